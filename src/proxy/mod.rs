//! The data path: one function, [`handle`], takes a client request to a response through
//! fixed phases: hygiene → client address → authenticate → policy → (enforced tokens)
//! plan → read body → prepare → resolve indices → authorize → forward; (pass-through tokens)
//! forward. Any phase's error becomes a response in `error.rs`.
//!
//! Invariants: the only reader of the clock on the request path; every request is
//! authenticated on its own (never per connection); an enforced token's request reaches the
//! backend only as an `es::Permit`.
//!
//! Around the phases:
//! - `recheck`: when the token snapshot changed while the request's body was read or it
//!   waited for room, authentication and policy run again on the current one (a token whose
//!   scope changed is refused, 503 `token_changed`); unchanged, it costs one pointer
//!   comparison and the expiry. The upstream pool asks it again once a request holds a
//!   connection it waited for or made, and before the next node after a failed connect.
//! - `Record` writes the audit event and metrics when the answer's body ends or is dropped:
//!   a client that goes away before its answer is recorded then, 499.
//! - The permit's `es::Answer` says how the answer is read: streamed untouched, sealed or
//!   transformed (read whole, capped, held in the body budget until written; shaping applied
//!   last, `finish_read_whole`). For `read` tokens the failures an answer reports keep only
//!   what describes the request (`failures`): a streamed search answer is judged from its
//!   beginning (`_shards`) and read whole only when it reports one; a gzip or deflate one is
//!   decoded only as far as judging needs (`inflate`).
//! - A refused answer that alone named a context its request created (a scroll, a point in
//!   time, an async search, a SQL cursor) has that context freed in the background with
//!   esgate's credentials (`release_context`): its client never got the id.
//! - A refusal that leaves an HTTP/1.1 body unread answers `Connection: close`, so pooling
//!   clients see the refusal, not a reset. Each request's span `request{id,token}` covers its
//!   log lines, and its id goes to the backend as `X-Opaque-Id: esgate:<token id>:<request
//!   id>` (the client's own is never relayed).

pub mod explain;
mod failures;
pub mod hygiene;
mod identity;
mod inflate;
mod replayed;
mod transformed;
pub mod upstream_request;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::app::App;
use crate::audit::{DataEvent, TokenText};
use crate::auth::{self, credential};
use crate::body::{read_budgeted, Body, BoxError, BudgetHold, ReadError};
use crate::error::ProxyError;
use crate::es;
use crate::es::ids::continuation::Named;
use crate::metrics::{Finished, Rejected};
use crate::policy::{self, client_ip};
use crate::store::model::{Permission, Token, UnixTime};
use crate::store::Snapshot;
use crate::upstream::AnswerBody;
use upstream_request::Forwarding;

/// What the server knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// What the audit log and metrics learn while a request goes through the phases.
pub(crate) struct RequestCtx {
    pub(crate) started: Instant,
    pub(crate) event: DataEvent,
    /// A `max_concurrent` slot of the token, released when the answer is done.
    pub(crate) slot: Option<crate::throttle::Slot>,
    /// How long the backend took to answer the forwarded request's head.
    pub(crate) backend: Option<std::time::Duration>,
    /// esgate's own time: request head to answer head, less `backend`.
    pub(crate) own: std::time::Duration,
    /// Request body bytes: read by esgate, or announced by a relayed request.
    pub(crate) bytes_in: u64,
    /// The client's address, once known (`pipeline`); its text is the record's `client`.
    pub(crate) client: IpAddr,
    /// The request was handed to a backend connection (set by the pool, `upstream::pool::
    /// Watch`): if the client goes away before the answer, the backend may have acted on it
    /// ([`Record`]). Not while it waits for a connection (attack21c: it was set before that
    /// wait, and a request abandoned there was recorded as forwarded).
    pub(crate) forwarded: std::sync::atomic::AtomicBool,
}

impl RequestCtx {
    pub(crate) fn new(event: DataEvent) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            event,
            slot: None,
            backend: None,
            own: std::time::Duration::ZERO,
            bytes_in: 0,
            client: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            forwarded: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Handles one data request. Never fails: errors become Elasticsearch-style responses.
pub async fn handle(app: Arc<App>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let ctx = RequestCtx::new(DataEvent {
        request_id: request_id(),
        client: ip_text(conn.peer.ip()),
        method: crate::audit::method_name(req.method()),
        path: audit_path(req.uri().path()),
        ..DataEvent::default()
    });
    // Written when dropped: with the answer's body, or here if the client goes away first.
    let mut record = Record {
        ctx,
        outcome: None,
        bytes: 0,
        app,
    };
    let Record { ctx, app, .. } = &mut record;
    // A refusal may leave the request body unread, and then the connection cannot carry
    // another request: say so, or a pooling client reuses it and sees a reset instead of the
    // refusal's reason.
    let close_on_error = req.version() <= http::Version::HTTP_11 && !req.body().is_end_stream();
    // Every log line of the request carries its id (and, once known, its token id).
    let span = tracing::info_span!(
        "request",
        id = %ctx.event.request_id,
        token = tracing::field::Empty
    );
    // Boxed: the pipeline's state (about 5 KB, most of it the upstream send's 3 KB future)
    // would otherwise sit twice in this future, which the server moves whole on every request
    // (issue 10: 11.9 KB before, 1,016 bytes now).
    // Made in its box, not on the stack and copied in (perf29c: a copy of the whole state,
    // about 600 instructions a request): the box is allocated first and the future, of which
    // only the arguments are set, written into it.
    let piped = Box::into_pin(Box::write(Box::new_uninit(), pipeline(app, conn, req, ctx)))
        .instrument(span.clone())
        .await;
    ctx.own = ctx
        .started
        .elapsed()
        .saturating_sub(ctx.backend.unwrap_or_default());
    let (response, outcome) = match piped {
        Ok(response) => (response, "allowed"),
        Err(e) => {
            ctx.event.reason = Some(e.to_string());
            match e {
                ProxyError::RateLimited(_) => app.metrics.rejected(Rejected::AuthFailures),
                ProxyError::Busy => app.metrics.rejected(Rejected::Busy),
                ProxyError::Upstream(crate::upstream::UpstreamError::Saturated) => {
                    app.metrics.rejected(Rejected::BackendConnections)
                }
                ProxyError::Upstream(crate::upstream::UpstreamError::Share { .. }) => {
                    app.metrics.rejected(Rejected::BackendShare)
                }
                ProxyError::TokenLimited(crate::throttle::Limited::Rate { .. }) => {
                    app.metrics.rejected(Rejected::RateLimited)
                }
                ProxyError::TokenLimited(crate::throttle::Limited::Concurrency { .. }) => {
                    app.metrics.rejected(Rejected::Concurrency)
                }
                ProxyError::TokenLimited(crate::throttle::Limited::OpenScrolls { .. }) => {
                    app.metrics.rejected(Rejected::OpenScrolls)
                }
                ProxyError::TokenLimited(crate::throttle::Limited::OpenPits { .. }) => {
                    app.metrics.rejected(Rejected::OpenPits)
                }
                ProxyError::TokenLimited(crate::throttle::Limited::RunningAsyncSearches {
                    ..
                }) => app.metrics.rejected(Rejected::RunningAsyncSearches),
                ProxyError::Rejected(ref r) if r.kind == es::RejectKind::OverLimit => {
                    app.metrics.rejected(Rejected::Guard)
                }
                ProxyError::AuditUnwritable => app.metrics.rejected(Rejected::Audit),
                _ => {}
            }
            // A full node's refusals are logged by `upstream`, once per interval with their
            // count: a line each flooded the log under saturation (rel18).
            if e.side() == crate::error::Side::Upstream
                && !matches!(
                    e,
                    ProxyError::Upstream(crate::upstream::UpstreamError::Saturated)
                )
            {
                span.in_scope(|| tracing::warn!(error = %e, "Backend failure"));
            }
            let mut response = e.into_response();
            if close_on_error {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            (response, e.code())
        }
    };
    ctx.event.status = response.status().as_u16();
    // Refused with nothing forwarded: its record may be dropped under a flood of refusals
    // without closing the gateway (`audit::Room::Refused`).
    ctx.event.refused = outcome != "allowed" && ctx.backend.is_none();
    ctx.event.decision = if outcome == "allowed" {
        "allow"
    } else {
        "deny"
    };
    record.outcome = Some(outcome);
    let (parts, body) = response.into_parts();
    let body = AuditedBody {
        inner: body,
        bytes: 0,
        done: Some(record),
    };
    Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
}

async fn pipeline(
    app: &Arc<App>,
    conn: ConnInfo,
    req: Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, ProxyError> {
    // Taken apart first: the head's one pass keeps what `decide` reads of the headers.
    let (parts, body) = req.into_parts();
    let head = hygiene::check_parts(&parts)?;
    let client_ip = client_address(app, conn.peer.ip(), head.forwarded, &parts.headers)?;
    ctx.client = client_ip;
    // The record starts with the peer's address, already formatted: only a forwarded address
    // is formatted again (issue 10: formatting addresses was 3% of a relayed request).
    if client_ip != conn.peer.ip() {
        ctx.event.client = ip_text(client_ip);
    }

    let now = crate::time::now();
    let snapshot = app.store.snapshot();
    // The credential first: a valid one is never refused because of others' failures from the
    // same address. Only wrong or malformed credentials count; none at all (probes) does not.
    let (token, claims) = match credential_token(app, &snapshot, &head, &parts.headers, now) {
        Ok(t) => t,
        Err(auth::AuthError::Missing) => return Err(auth::AuthError::Missing.into()),
        Err(e) => {
            app.limiter
                .check(client_ip, ctx.started)
                .map_err(|r| ProxyError::RateLimited(r.0))?;
            app.limiter.record_failure(client_ip, ctx.started);
            return Err(e.into());
        }
    };
    tracing::Span::current().record("token", tracing::field::display(&token.id));
    ctx.event.token_id = Some(TokenText::Id(Arc::clone(&token)));
    ctx.event.token_name = Some(TokenText::Name(Arc::clone(&token)));

    if let Some(claims) = &claims {
        ctx.event.link_id = Some(crate::kibana::link_ref(&claims.link_id).to_owned());
    }
    // Until when the request's credential stays valid with nothing changed (`recheck`'s fast
    // path).
    let valid_until = admit(&snapshot, &token, claims.as_ref(), client_ip, now)?;
    // `audit.on_failure = "closed"`: nothing is forwarded (or answered) while the audit log
    // cannot be written; before the limits, so a refusal spends none of the token's rate.
    if app.audit.refusing() {
        return Err(ProxyError::AuditUnwritable);
    }
    // The token's own limits, each unset one from `[policies.limits]`.
    let limits = token.limits.or(&app.config.policies.limits);
    // The concurrency slot lives as long as the request's context: until its answer's body
    // is fully sent or dropped.
    ctx.slot = app.throttle.admit(&token.id, &limits, ctx.started)?;
    app.store.touch(&token.id, now);

    let opaque_id = opaque_id(&token.id, &ctx.event.request_id);
    // The client's address text leaves the record while the upstream request is built from it
    // and goes back before anything else can end the request (issue 10: it was copied for
    // every request). Nothing in `decide` reads the record's address.
    let client_text = std::mem::take(&mut ctx.event.client);
    let forwarding = Forwarding {
        authorization: app.config.backend.authorization.as_ref().map(|a| &a.0),
        client_ip: &client_text,
        tls: conn.tls,
        opaque_id: &opaque_id,
    };
    ctx.bytes_in = head
        .content_length
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let decided = decide(
        app,
        &snapshot,
        &token,
        &parts,
        &head,
        ClientBody::Stream(body),
        &forwarding,
        ctx,
    )
    .await;
    ctx.event.client = client_text;
    // What the request is checked against again before it goes out (`recheck`): its body (and
    // room for its answer, and a backend connection) may take seconds.
    let again = Recheck {
        planned: &snapshot,
        token: &token,
        headers: &parts.headers,
        client_ip,
        valid_until,
        spaces: false,
    };
    let Forward {
        request: upstream_req,
        mut handling,
        hold,
        watch,
        holding,
        running,
        searches,
    } = match decided? {
        Decided::Forward(forward) => forward,
        Decided::Local(route, body) => {
            let again = Recheck {
                spaces: true,
                ..again
            };
            return Box::pin(identity::respond(app, &token, route, &parts, body, again)).await;
        }
    };
    // An `_msearch` was admitted as one request: its other searches are charged to the token's
    // rate as debt, never refused (a dashboard's `_msearch` larger than the burst still runs),
    // which its next requests wait out (msearch27: a token held to one request a second sent
    // one `_msearch` of 100,000 searches a second).
    if let Some(n) = searches {
        let extra = u64::try_from(n.saturating_sub(1)).unwrap_or(u64::MAX);
        app.throttle
            .charge(&token.id, &limits, extra, Instant::now());
    }
    // A scroll's or point in time's open takes one of the token's `max_open_scrolls` or
    // `max_open_pits` places, refused (429) with nothing forwarded when they are all taken
    // (`crate::scrolls`); so does a SQL query, which may open a cursor: one more point in time
    // (sql26).
    let mut opening = match &holding {
        Some((context, es::Holding::Open { keep_alive_ms })) => {
            let max = match context {
                es::Context::Scroll => limits.max_open_scrolls,
                es::Context::Pit | es::Context::SqlCursor => limits.max_open_pits,
                es::Context::AsyncSearch => limits.max_running_async_searches,
            };
            held(app, *context).open(&token.id, max, *keep_alive_ms, Instant::now())?
        }
        // A SQL cursor's next page on a cursor the token's count does not hold takes a place
        // as a query does (attack26d, M): every page names a new cursor and the old ones stay
        // good while the point in time behind them lives, so a page on an old cursor kept the
        // point in time alive (for its own `page_timeout`, up to a day) while the count, which
        // follows the newest cursor, let it lapse: one place opened points in time without
        // end. Counted, it may count a point in time twice; a cursor of before a restart is
        // counted from its next page (one look-up of the cursor: `open_unless_held`).
        Some((
            es::Context::SqlCursor,
            es::Holding::Next {
                backend_id,
                keep_alive_ms,
            },
        )) => app.pits.open_unless_held(
            &token.id,
            Some(backend_id),
            limits.max_open_pits,
            keep_alive_ms.unwrap_or_default(),
            Instant::now(),
        )?,
        _ => None,
    };
    // An async search's submit takes one of the token's `max_running_async_searches` places
    // the same way: the search it starts may run on in the background, on the search thread
    // pools every client shares, long after its answer (async25).
    let mut submitting = match &running {
        Some(es::Holding::Open { keep_alive_ms }) => app.async_searches.open(
            &token.id,
            limits.max_running_async_searches,
            *keep_alive_ms,
            Instant::now(),
        )?,
        _ => None,
    };
    // Room for an answer whose size esgate knows ahead (a scroll's next page), made before the
    // backend is asked: refused now, the client's retry gets the same page; refused once the
    // answer is in, the backend had moved the scroll past it and the page was lost.
    let room = match &handling {
        Handling::Seal { sealing, .. } if sealing.expected > 0 => {
            Box::pin(make_room(app, sealing)).await?
        }
        _ => BudgetHold::default(),
    };
    // The request was planned under the snapshot its head was authenticated with; its body
    // (and room for its answer) may have taken seconds since. Checked again once it has a
    // connection it waited for (up to `backend.connect_timeout`).
    recheck(app, &again)?;
    let gate = || recheck(app, &again).is_ok();
    let sending = crate::upstream::pool::Watch {
        gate: Some(&gate),
        sent: Some(&ctx.forwarded),
    };
    let sent = Instant::now();
    // From here the backend may open the scroll even if its answer never comes back.
    for o in [opening.as_mut(), submitting.as_mut()]
        .into_iter()
        .flatten()
    {
        o.sent();
    }
    let response = app
        .upstream
        .send_as(Some(&token.id), upstream_req, sending)
        .await;
    // The forwarded body is sent: its share of the body budget is free again.
    drop(hold);
    // A search on a scroll or point in time that reached the backend kept it alive for its
    // keep-alive whatever comes back: each shard takes the longer keep-alive as it takes the
    // context (`ReaderContext::markAsUsed`), before the query is parsed and run, so an answer
    // that failed (a query the shards refuse, a circuit breaker, a node's error, none at all)
    // kept it alive too (attack25c: counted only on a 2xx, a point in time opened for `1s` and
    // searched with `pit.keep_alive: 24h` and a failing query was held a day, counted for a
    // minute). A 2xx keeps it alive from its answer again, a 404 ends it (`held_answered`).
    if ctx.forwarded.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some((
            context,
            es::Holding::Next {
                backend_id,
                keep_alive_ms,
            },
        )) = &holding
        {
            held(app, *context).next_page(
                &token.id,
                backend_id,
                None,
                *keep_alive_ms,
                Instant::now(),
            );
        }
    }
    // Not handed to a backend connection: nothing was opened.
    if response.is_err() && !ctx.forwarded.load(std::sync::atomic::Ordering::Relaxed) {
        for o in [opening.take(), submitting.take()].into_iter().flatten() {
            o.not_opened();
        }
    }
    let response = match response {
        // Refused unsent by the recheck after the wait: why, as the recheck says now.
        Err(crate::upstream::UpstreamError::Gated) => {
            recheck(app, &again)?;
            return Err(ProxyError::TokenChanged);
        }
        r => {
            ctx.backend = Some(sent.elapsed());
            r?
        }
    };
    let (up, body) = response.into_parts();
    let enforced = token.permission() != Permission::All;
    // The rare answers below are boxed: their states would grow every request's future.
    // A 429's reason describes the node (memory each circuit breaker holds, a thread pool's
    // completed tasks: every tenant's work), so a `read` token gets only its type (review 15).
    if up.status.is_server_error() || (enforced && up.status == http::StatusCode::TOO_MANY_REQUESTS)
    {
        let release = match &handling {
            Handling::Seal { sealing, .. } => sealing.id,
            _ => None,
        };
        // The room made for a page is not needed for an error (review 16d).
        drop(room);
        // A failed search keeps no scroll context, and a failed submit runs no search. A
        // failed next page kept its context alive: the place it took stays (`Opening::sent`).
        let paging = matches!(holding, Some((_, es::Holding::Next { .. })));
        let opening = opening.take().filter(|_| !paging);
        for o in [opening, submitting.take()].into_iter().flatten() {
            o.not_opened();
        }
        // A poll answered so names a search that failed (not running) or was not read: it
        // ends only when its answer says it no longer runs.
        let mut still = None;
        let watching = matches!(running, Some(es::Holding::Next { .. }));
        let failed = Box::pin(backend_failure(
            app,
            enforced,
            release,
            up,
            body,
            watching.then_some(&mut still),
        ))
        .await;
        if let Some(running) = &running {
            running_sealed(app, &token.id, running, false, None, still, None);
        }
        return failed;
    }
    let success = up.status.is_success();
    let status = up.status;
    if let Some(holding) = &holding {
        held_answered(app, &token.id, holding.0, &holding.1, status, &mut opening);
    }
    if let Some(running) = &running {
        held_answered(
            app,
            &token.id,
            es::Context::AsyncSearch,
            running,
            status,
            &mut None,
        );
    }
    if let Handling::Seal { sealing, .. } = &mut handling {
        // A failed async search still answers with its id (under its error status).
        sealing.id = sealing
            .id
            .filter(|id| success || id.kind == es::ids::continuation::IdKind::AsyncSearch);
        if sealing.id.is_none() && sealing.sort.is_none() {
            handling = Handling::Stream;
        }
    }
    // An answer esgate reads whole still needs the backend's headers; a streamed one gives
    // them up to the client's (made in place).
    let (mut headers, up_headers) = match handling {
        Handling::Stream => (
            upstream_request::into_response_headers(up.headers, enforced),
            HeaderMap::new(),
        ),
        _ => (
            upstream_request::response_headers(&up.headers, enforced),
            up.headers,
        ),
    };
    match handling {
        Handling::Transform { transform, shaping } => {
            let (status, headers, bytes, hold) = Box::pin(transformed::respond(
                app,
                &transform,
                status,
                &up_headers,
                headers,
                body,
            ))
            .await?;
            // `_terms_enum` keeps the search's `_shards`, failures included.
            let bytes = without_failure_details(bytes);
            finish_read_whole(app, shaping.as_ref(), status, headers, bytes, hold)
        }
        Handling::Seal { sealing, shaping } => {
            if let Some(id) = sealing.id {
                seal_id_headers(
                    &sealing.binding,
                    id,
                    sealing.sort.as_ref(),
                    &up_headers,
                    &mut headers,
                );
            }
            // An async search on a point in time names it in its answer too (rel26).
            let on_pit = matches!(holding, Some((es::Context::Pit, es::Holding::Next { .. })));
            let (bytes, hold, named, async_answer) = Box::pin(seal_response(
                app,
                &sealing,
                (success, on_pit),
                &up_headers,
                body,
                room,
            ))
            .await?;
            if let Some(holding) = &holding {
                held_sealed(app, &token.id, holding, named, opening);
            }
            if let (Some(running), Some((async_id, is_running))) = (&running, async_answer) {
                running_sealed(
                    app,
                    &token.id,
                    running,
                    success,
                    async_id.as_deref(),
                    is_running,
                    submitting,
                );
            }
            finish_read_whole(app, shaping.as_ref(), status, headers, bytes, hold)
        }
        // A `read` token's answer that may report failures is judged before it streams.
        Handling::Stream if enforced && (watch.is_some() || status.is_client_error()) => {
            let header_first = watch.unwrap_or(true);
            match failures::at_once(&app.body_budget, status, headers, body, header_first) {
                failures::AtOnce::Sent(answer) => Ok(answer),
                failures::AtOnce::Streams { headers, mut body } => {
                    body.ending().await;
                    Ok(answer(
                        status,
                        headers,
                        http_body_util::BodyExt::boxed(body),
                    ))
                }
                failures::AtOnce::Broken(e) => Err(e),
                failures::AtOnce::Judge {
                    headers,
                    body,
                    held,
                } => {
                    Box::pin(failures::respond(
                        app,
                        status,
                        headers,
                        body,
                        header_first,
                        held,
                    ))
                    .await
                }
            }
        }
        // An answer of no stated length, sent with its end when that came with it.
        Handling::Stream if replayed::unbounded(&body) => Ok(answer(
            status,
            headers,
            replayed::Replayed::streamed(body).await,
        )),
        Handling::Stream => Ok(answer(
            status,
            headers,
            http_body_util::BodyExt::boxed(body),
        )),
    }
}

/// A client request's body: the connection's stream (a real request), or bytes given whole
/// (`POST /explain`). Both go through the same reads, caps and checks.
pub enum ClientBody {
    Stream(Incoming),
    Whole(Bytes),
}

impl ClientBody {
    pub(crate) fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Stream(b) => b.is_end_stream(),
            ClientBody::Whole(b) => b.is_empty(),
        }
    }
}

/// What esgate does with an authenticated, policy-checked request.
// Returned once per request and moved once: copying the large variant costs less than the
// allocation a `Box` would add to every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decided {
    /// esgate answers it itself (`_security/_authenticate`, `_has_privileges` for `read`
    /// tokens): nothing is forwarded.
    Local(es::routes::identity::SelfRoute, ClientBody),
    /// The request to send upstream, and what to do with its answer.
    Forward(Forward),
}

/// The upstream request for a client request, with what its answer needs.
pub(crate) struct Forward {
    pub(crate) request: crate::upstream::UpstreamRequest,
    /// What esgate does with the answer.
    handling: Handling,
    /// The body budget the request's body and what esgate built from it hold, until the
    /// upstream request is sent (session 11 review: an msearch's forwarded NDJSON can be many
    /// times the client's body, and was held uncounted for the whole upstream call).
    hold: BudgetHold,
    /// A `read` token's answer of the search family: its reported failures are judged
    /// (`failures`; whether the route writes them before its results).
    watch: Option<bool>,
    /// What the request does to the token's open scrolls, points in time or SQL cursors
    /// (`crate::scrolls`).
    holding: Option<(es::Context, es::Holding)>,
    /// What the request does to the token's running async searches (`crate::scrolls`).
    running: Option<es::Holding>,
    /// An `_msearch`'s searches, each charged to the token's rate (msearch27); `None` for every
    /// other request and every `all` token's (relayed unread).
    searches: Option<usize>,
}

/// [`es::Answer`] with what the proxy needs to carry it out: the token binding the request
/// was checked under, for sealing.
enum Handling {
    Stream,
    Seal {
        sealing: Sealing,
        shaping: Option<es::answers::shaping::Shaping>,
    },
    Transform {
        transform: es::routes::Transform,
        shaping: Option<es::answers::shaping::Shaping>,
    },
}

impl Handling {
    fn new(answer: es::Answer, binding: es::ids::continuation::Binding) -> Handling {
        match answer {
            es::Answer::Stream => Handling::Stream,
            es::Answer::Seal {
                id,
                sort,
                shaping,
                expected,
            } => Handling::Seal {
                sealing: Sealing {
                    id,
                    sort,
                    binding,
                    expected,
                },
                shaping,
            },
            es::Answer::Transform { transform, shaping } => {
                Handling::Transform { transform, shaping }
            }
        }
    }
}

/// The one decision for a token's request, shared by the data path and `POST /explain`: for an
/// `all` token the cleaned relay, for a `read` token plan → body → prepare → resolve →
/// authorize and the upstream request built from the permit. Sends nothing upstream but index
/// resolutions (and the dialect lookup for point-in-time routes).
// The request's head comes as its parts and what hygiene's pass found in them (`head`), which
// borrows the parts: one argument more than clippy's default.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide(
    app: &Arc<App>,
    snapshot: &Snapshot,
    token: &Token,
    parts: &Parts,
    head: &hygiene::Head<'_>,
    body: ClientBody,
    forwarding: &Forwarding<'_>,
    ctx: &mut RequestCtx,
) -> Result<Decided, ProxyError> {
    match token.permission() {
        Permission::All => {
            ctx.event.action = Some("pass_through");
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            // The target as the backend's request line gets it: a path from its `/`
            // (attack25b). An HTTP/2 `:path` is taken as sent, `*` or a query alone (`?x`) for
            // any method, which went out as `GET * HTTP/1.1`. A `read` token's path is the
            // route's (`es::request::endpoint` refuses the rest).
            if !pq.starts_with('/') {
                return Err(ProxyError::BadRequest(
                    "only origin-form request targets (a path from its '/') are accepted".into(),
                ));
            }
            let (body, hold) = match guarded_store(app) {
                // The token store lives in this cluster: read the request before relaying it.
                Some(store) => {
                    let (bytes, hold) = check_store_reach(app, store, parts, body).await?;
                    (ClientBody::Whole(bytes), hold)
                }
                None => (body, BudgetHold::default()),
            };
            Ok(Decided::Forward(Forward {
                request: upstream_request::pass_through(
                    parts.method.clone(),
                    pq,
                    &parts.headers,
                    body,
                    forwarding,
                    &app.config.backend.relay_headers,
                ),
                handling: Handling::Stream,
                hold,
                watch: None,
                holding: None,
                running: None,
                searches: None,
            }))
        }
        Permission::Read => {
            if let Some(store) = guarded_store(app) {
                if let Some(p) = es::indices::store_guard::token_reaches(&token.indices, store) {
                    return Err(es::Rejection::forbidden(format!(
                        "the token's index pattern [{}] reaches esgate's token store index, which no token may read; narrow the pattern",
                        es::error::printable(p)
                    ))
                    .into());
                }
            }
            let accept = es::request::media::upstream_accept(
                value_str(head.accept, header::ACCEPT)?,
                value_str(head.content_type, header::CONTENT_TYPE)?,
            )?;
            if let Some(route) =
                es::routes::identity::route(parts.method.as_str(), parts.uri.path())
            {
                ctx.event.action = Some(route.action());
                return Ok(Decided::Local(route, body));
            }
            // Not boxed: `pipeline`'s future is (in `handle`), and enforcing (2.7 KB: the body
            // read, the prepared request across the resolution) is never live with the
            // upstream send (3 KB), which it shares its room with. Its own box was an
            // allocation over mimalloc's small size a request (perf26c: -910 instructions a
            // small GET, +85 a relayed one).
            let Enforced {
                mut permit,
                binding,
                hold,
                body: client_body,
                searches,
            } = enforce(app, snapshot, token, parts, head, body, ctx).await?;
            let holding = permit.take_holding();
            let running = permit.async_search.take();
            let handling = Handling::new(permit.answer.clone(), binding);
            let watch = es::answers::failures::watched(permit.action);
            // A large body's spans are slices of the client's: `hold` covers it as long as
            // they are sent (until the upstream call returns).
            let request = upstream_request::from_permit(
                permit,
                client_body.as_ref(),
                accept,
                head,
                forwarding,
            )?;
            Ok(Decided::Forward(Forward {
                watch,
                request,
                handling,
                hold,
                holding,
                running,
                searches,
            }))
        }
    }
}

/// The `X-Opaque-Id` esgate sends upstream: `esgate:<token id>:<request id>`, so the cluster's
/// slow log and tasks API point back to the token and the audit line. A client's own
/// `X-Opaque-Id` is never relayed (it could name another token).
pub(crate) fn opaque_id(token_id: &str, request_id: &str) -> String {
    const PREFIX: &str = "esgate:";
    let mut id = String::with_capacity(PREFIX.len() + token_id.len() + 1 + request_id.len());
    id.push_str(PREFIX);
    id.push_str(token_id);
    id.push(':');
    id.push_str(request_id);
    id
}

/// An address as text, as `Display` writes it; an IPv4 address without `fmt` (issue 10:
/// formatting the peer's address was over 1% of a relayed request).
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// The path as the audit record keeps it: its first 512 characters.
fn audit_path(path: &str) -> String {
    // At most 512 bytes is at most 512 characters: copied whole.
    if path.len() <= 512 {
        path.to_owned()
    } else {
        path.chars().take(512).collect()
    }
}

/// The last step of every answer esgate read whole and rewrote (sealed ids, transforms): the
/// client's response shaping (`filter_path`, `pretty`, see `es::answers::shaping`) is applied here, after
/// every esgate step, so it can only remove parts of esgate's final answer, never what esgate
/// seals or checks. The body is rebuilt, so its length is recomputed. `hold` covers `bytes` in
/// the body budget, and the answer sent keeps it until it is written.
fn finish_read_whole(
    app: &App,
    shaping: Option<&es::answers::shaping::Shaping>,
    status: http::StatusCode,
    mut headers: HeaderMap,
    bytes: Bytes,
    hold: BudgetHold,
) -> Result<Response<Body>, ProxyError> {
    headers.remove(header::CONTENT_LENGTH);
    let (bytes, hold) = match shaping {
        // Not JSON, too large to shape, or no room to shape it now: sent as it is (shaping
        // only removes parts or re-indents: the client gets more than it asked, never less).
        // Session 12 review: refused busy, a scroll page was lost (the backend had moved the
        // scroll past it) for a `filter_path` the Node client's scroll helpers always send.
        Some(s) => reshape(app, s, bytes, hold).unwrap_or_else(|unshaped| unshaped),
        None => (bytes, hold),
    };
    Ok(answer(status, headers, crate::body::held(bytes, hold)))
}

/// `bytes` (which `hold` covers in the body budget) shaped as the client asked, the tree and
/// the text charged beside them; the hold then covers what is sent. Not JSON or too large to
/// shape: `bytes` as they are. `Err`: no room to shape them now (they come back as they were,
/// with their hold).
fn reshape(
    app: &App,
    shaping: &es::answers::shaping::Shaping,
    bytes: Bytes,
    hold: BudgetHold,
) -> Result<(Bytes, BudgetHold), (Bytes, BudgetHold)> {
    let (shaped, mut hold) = metered(app, bytes.len(), hold, |meter| shaping.apply(&bytes, meter));
    match shaped {
        Ok(Some(shaped)) => {
            drop(bytes);
            hold.keep(shaped.len());
            Ok((Bytes::from(shaped), hold))
        }
        Ok(None) => {
            hold.keep(bytes.len());
            Ok((bytes, hold))
        }
        Err(_) => {
            hold.keep(bytes.len());
            Err((bytes, hold))
        }
    }
}

/// A response with the status, headers and body esgate decided on.
fn answer(status: http::StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// What an answer gets sealed with before the client sees it.
struct Sealing {
    /// A continuation id in the answer.
    id: Option<es::ids::continuation::Seal>,
    /// Doc-id sort values in the answer's hits.
    sort: Option<es::ids::ordinals::SortSeal>,
    /// The token binding the request was checked under.
    binding: es::ids::continuation::Binding,
    /// About how large the answer will be (`es::Answer::Seal`), 0 when unknown.
    expected: usize,
}

/// The count of the token's open contexts of `context`. SQL cursors are counted with points
/// in time (`max_open_pits`, sql26): each holds one on the backend, and one limit bounds all
/// the token holds.
fn held(app: &App, context: es::Context) -> &crate::scrolls::Scrolls {
    match context {
        es::Context::Scroll => &app.scrolls,
        es::Context::Pit | es::Context::SqlCursor => &app.pits,
        es::Context::AsyncSearch => &app.async_searches,
    }
}

/// The token's open scrolls (points in time) as a request's answer `status` leaves them
/// (before its id, if any, is sealed: [`held_sealed`]): an open that failed opened nothing; a
/// next page (a search on a point in time) answered keeps it alive from now, one answered 404
/// names one that is gone; a clear (close) answered (404: none of them was there) ends them.
fn held_answered(
    app: &App,
    token_id: &str,
    context: es::Context,
    holding: &es::Holding,
    status: http::StatusCode,
    opening: &mut Option<crate::scrolls::Opening>,
) {
    let gone = status == http::StatusCode::NOT_FOUND;
    let count = held(app, context);
    match holding {
        es::Holding::Open { .. } => {
            if !status.is_success() {
                if let Some(o) = opening.take() {
                    o.not_opened();
                }
            }
        }
        es::Holding::Next {
            backend_id,
            keep_alive_ms,
        } => {
            if status.is_success() {
                count.next_page(token_id, backend_id, None, *keep_alive_ms, Instant::now());
            } else if gone {
                count.ended(token_id, [backend_id.as_str()]);
                // A place taken for a cursor not counted (attack26d): nothing is held.
                if let Some(o) = opening.take() {
                    o.not_opened();
                }
            }
        }
        es::Holding::Clear { backend_ids } => {
            if status.is_success() || gone {
                count.ended(token_id, backend_ids.iter().map(String::as_str));
            }
        }
    }
}

/// A scroll's (point in time's, SQL cursor's) answer was sealed, naming the backend id
/// `named` (a scroll's or point in time's when its beginning names one; a SQL cursor's from the
/// whole answer): an open's place becomes that context; a next page's (search's) follows a new
/// id. A SQL answer read to its end without a cursor (its last page: Elasticsearch closed the
/// point in time the cursor paged through) opened nothing, or ended the cursor it continued.
fn held_sealed(
    app: &App,
    token_id: &str,
    (context, holding): &(es::Context, es::Holding),
    named: Named,
    opening: Option<crate::scrolls::Opening>,
) {
    let answer_id = match &named {
        Named::Id(id) => Some(id.as_str()),
        Named::Nothing | Named::Unknown => None,
    };
    // An open's place, or the one a page on a cursor the count did not hold took (attack26d):
    // it becomes the context its answer names, or is given back when it names none.
    if let Some(o) = opening {
        if named == Named::Nothing {
            o.not_opened();
        } else {
            o.opened(answer_id, Instant::now());
        }
        return;
    }
    match holding {
        es::Holding::Open { .. } | es::Holding::Clear { .. } => {}
        es::Holding::Next { backend_id, .. } if named == Named::Nothing => {
            held(app, *context).ended(token_id, [backend_id.as_str()]);
        }
        es::Holding::Next {
            backend_id,
            keep_alive_ms,
        } => {
            if answer_id.is_some_and(|id| id != backend_id) {
                held(app, *context).next_page(
                    token_id,
                    backend_id,
                    answer_id,
                    *keep_alive_ms,
                    Instant::now(),
                );
            }
        }
    }
}

/// The token's running async searches as an async search answer leaves them, read whole
/// (`success`: its status; `async_id`: the backend id it names first; `is_running`: its
/// top-level `is_running`, `None` when it has none or was not read). A submit's place is given
/// back when its search no longer runs or it failed without saying it runs (the backend ran
/// nothing), and otherwise becomes the search, by its id, for its keep-alive (an answer that
/// does not say: counted). A poll or status whose answer says the search no longer runs ends
/// it; one that says it runs, or does not say, keeps it alive for the poll's `keep_alive`.
/// (A delete, and a poll answered 404, end it in [`held_answered`].)
fn running_sealed(
    app: &App,
    token_id: &str,
    running: &es::Holding,
    success: bool,
    async_id: Option<&str>,
    is_running: Option<bool>,
    submitting: Option<crate::scrolls::Opening>,
) {
    match running {
        es::Holding::Open { .. } => {
            if let Some(o) = submitting {
                match is_running {
                    Some(false) => o.not_opened(),
                    None if !success => o.not_opened(),
                    _ => o.opened(async_id, Instant::now()),
                }
            }
        }
        es::Holding::Next { backend_id, .. } if is_running == Some(false) => {
            app.async_searches.ended(token_id, [backend_id.as_str()]);
        }
        // Kept alive from its answer (`held_answered`); nothing more to do.
        es::Holding::Next { .. } | es::Holding::Clear { .. } => {}
    }
}

/// Backend error answers are small; a larger 5xx body is not an Elasticsearch error.
const MAX_BACKEND_ERROR: usize = 64 * 1024;

/// A backend server error (5xx), and for a `read` token a 429 too, is answered as an
/// Elasticsearch error, never relayed raw: for a
/// `read` token always as esgate's own error (the status and, when it is a plain identifier,
/// the backend's error type; its reason may quote what the token must not see); for an `all`
/// token the backend's own Elasticsearch error is relayed, but anything else (a proxy's HTML
/// 502 page, a truncated answer) becomes esgate's error too.
async fn backend_failure(
    app: &App,
    enforced: bool,
    release: Option<es::ids::continuation::Seal>,
    up: http::response::Parts,
    body: AnswerBody,
    is_running: Option<&mut Option<bool>>,
) -> Result<Response<Body>, ProxyError> {
    let read = crate::body::read_capped(body, MAX_BACKEND_ERROR);
    let bytes = match tokio::time::timeout(app.config.backend.answer_timeout, read).await {
        Ok(Ok(bytes)) => Some(bytes),
        _ => None,
    };
    // An async search's poll: whether the search it names still runs (`running_sealed`), by
    // the answer's header, else its body (when it was read: one over `MAX_BACKEND_ERROR`
    // says nothing).
    if let Some(found) = is_running {
        *found = async_is_running_header(&up.headers).or_else(|| {
            bytes
                .as_deref()
                .and_then(es::routes::async_search::is_running)
        });
    }
    let es_type = bytes.as_deref().and_then(es::error::backend_error_type);
    match (enforced, es_type, bytes) {
        (false, Some(_), Some(bytes)) => {
            let headers = upstream_request::response_headers(&up.headers, false);
            Ok(answer(up.status, headers, crate::body::full(bytes)))
        }
        (_, es_type, bytes) => {
            // A failed async search that was stored still names itself; its client gets
            // esgate's error, not the id.
            if let Some(bytes) = bytes {
                release_context(app, release, Leftover::Read(&bytes));
            }
            Err(ProxyError::Upstream(
                crate::upstream::UpstreamError::Failed {
                    status: up.status.as_u16(),
                    es_type: es_type.flatten(),
                },
            ))
        }
    }
}

/// An answer esgate read whole for a `read` token, with the failures it reports keeping only
/// what describes the request (`failures`).
fn without_failure_details(bytes: Bytes) -> Bytes {
    match es::answers::failures::peek(&bytes, true) {
        es::answers::failures::Peek::Clean => bytes,
        _ => es::answers::failures::withhold(&bytes).map_or(bytes, Bytes::from),
    }
}

/// Elasticsearch's (8.16+) header on an async search answer saying whether its search runs.
const ASYNC_IS_RUNNING: &str = "x-elasticsearch-async-is-running";

/// Whether an async search answer's `X-Elasticsearch-Async-Is-Running` (Elasticsearch 8.16+)
/// says its search runs: `?1` or `?0` (a structured-field boolean), given once; `None` without
/// it or with anything else, and then the answer's body says (`async_search::is_running`).
/// Read first: it needs no read of the body, whose beginning a 5xx poll's over
/// `MAX_BACKEND_ERROR` never gives (its search was counted as running until its keep-alive).
fn async_is_running_header(headers: &HeaderMap) -> Option<bool> {
    let mut values = headers.get_all(ASYNC_IS_RUNNING).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    match value.as_bytes() {
        b"?1" => Some(true),
        b"?0" => Some(false),
        _ => None,
    }
}

/// Elasticsearch (8.16+) repeats an async search id in `X-Elasticsearch-Async-Id`: on an async
/// search answer, the backend's (`upstream`) is added to the client's `headers` sealed like the
/// body's id (or dropped when it cannot be read), with `X-Elasticsearch-Async-Is-Running`. No
/// other answer relays either to a `read` token (`upstream_request::relayed`, attack18b).
fn seal_id_headers(
    binding: &es::ids::continuation::Binding,
    seal: es::ids::continuation::Seal,
    sort: Option<&es::ids::ordinals::SortSeal>,
    upstream: &HeaderMap,
    headers: &mut HeaderMap,
) {
    const ASYNC_ID: &str = "x-elasticsearch-async-id";
    if seal.kind != es::ids::continuation::IdKind::AsyncSearch {
        return;
    }
    headers.remove(ASYNC_IS_RUNNING);
    for v in upstream.get_all(ASYNC_IS_RUNNING) {
        headers.append(ASYNC_IS_RUNNING, v.clone());
    }
    let sealed: Vec<http::HeaderValue> = upstream
        .get_all(ASYNC_ID)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| {
            es::routes::async_search::seal_id(
                binding,
                v,
                sort.and_then(es::ids::ordinals::SortSeal::async_positions),
            )
        })
        .filter_map(|v| http::HeaderValue::from_str(&v).ok())
        .collect();
    headers.remove(ASYNC_ID);
    for v in sealed {
        headers.append(ASYNC_ID, v);
    }
}

/// Index resolutions one request may have in flight at once.
pub(super) const RESOLVE_CONCURRENCY: usize = 8;

/// Responses that carry a continuation id or doc-id sort values are read whole (capped) so
/// they can be sealed before the client sees them.
const MAX_SEALED_RESPONSE: usize = 256 * 1024 * 1024;

/// `on_pit`: the request is an async search on a point in time, whose answer names the point
/// in time (a new id the count follows, as a search's) in its `response.pit_id`.
async fn seal_response(
    app: &App,
    sealing: &Sealing,
    (success, on_pit): (bool, bool),
    headers: &HeaderMap,
    mut body: AnswerBody,
    room: BudgetHold,
) -> Result<(Bytes, BudgetHold, Named, Option<AsyncAnswer>), ProxyError> {
    let mut start = crate::body::ReadStart::default();
    let read = read_answer(
        app,
        headers,
        &mut body,
        MAX_SEALED_RESPONSE,
        &mut start,
        room,
    )
    .await;
    let (bytes, mut hold) = match read {
        Ok(read) => read,
        Err(e) => {
            let prefix = start.prefix(es::ids::continuation::LEADING_ID_PREFIX);
            let leftover = match prefix.as_deref() {
                Some(prefix) => Leftover::Read(prefix),
                None if !start.taken() => Leftover::Unread(body),
                // Its beginning is gone: what remains could name anything.
                None => Leftover::Lost,
            };
            release_context(app, sealing.id, leftover);
            return Err(e);
        }
    };
    let bytes = without_failure_details(bytes);
    // Room for the copies sealing makes (one per id and per sort seal, at least one: what it
    // claims from the meter below) is waited for as the answer's was (session 12 review:
    // refused at once, a scroll page the backend had already moved past was lost, the
    // client's retry getting the next one). Room that could never fit is left to the claims
    // below to refuse (502).
    let budget = &app.body_budget;
    match budget
        .wait_to_cover(
            &mut hold,
            seal_room(bytes.len(), sealing),
            app.config.limits.buffered_wait,
        )
        .await
    {
        Ok(()) | Err(ReadError::TooLarge) => {}
        Err(_) => {
            release_context(app, sealing.id, Leftover::Read(&bytes));
            return Err(ProxyError::Busy);
        }
    }
    // The copies sealing makes are claimed beside the answer (429 while others hold the
    // budget, 502 when they could never fit), and the sealed copy stays held until it is sent.
    let (sealed, mut hold) = metered(app, bytes.len(), hold, |meter| {
        es::routes::seal_answer_named(
            &sealing.binding,
            sealing.id,
            sealing.sort.as_ref(),
            success,
            &bytes,
            meter,
        )
    });
    let (sealed, sealed_named) = match sealed {
        Ok((Ok(sealed), named)) => (sealed, named),
        Err(refused) => {
            release_context(app, sealing.id, Leftover::Read(&bytes));
            return Err(answer_refused(refused));
        }
        Ok((Err(_), _)) => {
            release_context(app, sealing.id, Leftover::Read(&bytes));
            return Err(ProxyError::Upstream(
                crate::upstream::UpstreamError::Unexpected,
            ));
        }
    };
    // The backend id of the scroll or point in time the answer names, for the count of open
    // ones (`crate::scrolls`): Elasticsearch writes it first (an async search's `id` names
    // neither). A SQL answer's cursor comes after its rows: read from the whole answer, which
    // also tells a last page (no cursor) from an answer esgate could not read (sql26). An async
    // search on a point in time names it in its `response.pit_id`, which Elasticsearch may
    // change as a search's `pit_id` (clients go on with the newest): the count follows it as it
    // follows a search's (rel26: it kept the old id, so a close with the new one freed nothing
    // and the new one's searches did not keep it alive). The SQL answer's cursor is what the
    // seal's own pass found (`seal_answer_named`: a successful answer's id is sealed by
    // `continuation::seal_response`, which reads it as `continuation::named_id` does; perf27b,
    // one pass over the answer rather than two).
    let named = match sealing.id.filter(|_| success) {
        Some(s) if s.kind == es::ids::continuation::IdKind::SqlCursor => sealed_named,
        Some(s)
            if matches!(
                s.kind,
                es::ids::continuation::IdKind::Scroll | es::ids::continuation::IdKind::Pit
            ) =>
        {
            es::ids::continuation::leading_id(s.field, &bytes).map_or(Named::Unknown, Named::Id)
        }
        Some(s) if s.kind == es::ids::continuation::IdKind::AsyncSearch && on_pit => {
            es::routes::async_search::pit_id(&bytes).map_or(Named::Unknown, Named::Id)
        }
        _ => Named::Unknown,
    };
    // An async search's answer: the id it names (written first) and whether its search still
    // runs (`is_running`, among the first keys), for the count of running ones.
    let async_answer = sealing
        .id
        .filter(|s| s.kind == es::ids::continuation::IdKind::AsyncSearch)
        .map(|s| {
            (
                es::ids::continuation::leading_id(s.field, &bytes),
                async_is_running_header(headers)
                    .or_else(|| es::routes::async_search::is_running(&bytes)),
            )
        });
    drop(bytes);
    hold.keep(sealed.len());
    Ok((Bytes::from(sealed), hold, named, async_answer))
}

/// What an async search's answer says of its search: the backend id it names first, and its
/// `is_running` ([`running_sealed`]).
type AsyncAnswer = (Option<String>, Option<bool>);

/// The room sealing an answer of `len` bytes takes: the answer and the copies sealing makes
/// (one per id and per sort seal, at least one: what it claims from the meter), and slack.
fn seal_room(len: usize, sealing: &Sealing) -> usize {
    let copies = (usize::from(sealing.id.is_some()) + usize::from(sealing.sort.is_some())).max(1);
    len.saturating_mul(1 + copies).saturating_add(SEAL_SLACK)
}

/// The room for the answer `sealing` expects ([`seal_room`]), made before the request is
/// sent: `Busy` (429) when it was not free at once within `listen.buffered_wait`; none when it
/// could never fit (the answer's own claims refuse it then, as without this step). It waits
/// outside the budget's queue (`BodyBudget::wait_for_room`): request bodies and answers
/// already in flight go first (review 16d: queued, it refused the one and held back the
/// other, and a replayed id of a spent scroll did so for nothing).
async fn make_room(app: &App, sealing: &Sealing) -> Result<BudgetHold, ProxyError> {
    let mut hold = BudgetHold::default();
    match app
        .body_budget
        .wait_for_room(
            &mut hold,
            seal_room(sealing.expected, sealing),
            app.config.limits.buffered_wait,
        )
        .await
    {
        Ok(()) => Ok(hold),
        Err(ReadError::TooLarge) => Ok(BudgetHold::default()),
        Err(_) => Err(ProxyError::Busy),
    }
}

/// What esgate has of an answer it refused, to find the id of the context it names.
enum Leftover<'a> {
    /// The answer, or its beginning.
    Read(&'a [u8]),
    /// The answer's body, not a byte of it taken yet.
    Unread(AnswerBody),
    /// Nothing usable: its beginning was taken and is gone.
    Lost,
}

/// How much of a refused answer read whole is searched for the id of the context it names
/// (`leading_id_within`): ids esgate refuses to hand out for their length included (a point in
/// time over some 4,000 shards; a longer one is left to its keep-alive).
const MAX_RELEASED_ID: usize = 1024 * 1024;

/// Release tasks that may run at once; past them a refused answer's context is left to the
/// backend's `keep_alive`. Each holds at most `LEADING_ID_PREFIX` of an answer's beginning, or
/// an id of at most `MAX_RELEASED_ID`.
const MAX_RELEASES: usize = 16;

static RELEASES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RELEASES);

/// An answer naming a backend context its own request created (`Seal::release`: a scroll, a
/// point in time, an async search, a SQL query's cursor) was refused: its client never got the id, so nobody else
/// can free the context (an async search lives until its `keep_alive`, days; scroll and point
/// in time contexts hold segments and heap). esgate frees it with its own credentials, in the
/// background (best effort: the client's answer is neither delayed nor changed), with a log
/// line that names the kind of context, never its id. The id is read only from the answer's
/// real beginning (`es::ids::continuation::leading_id`): read from its middle, a document's
/// text could name another client's context. A client that went away before its answer was
/// written is not followed: like one that forgets to free its scroll, it leaves the context
/// to its `keep_alive`.
fn release_context(app: &App, seal: Option<es::ids::continuation::Seal>, leftover: Leftover<'_>) {
    use es::ids::continuation::{leading_id, leading_id_within, Release, LEADING_ID_PREFIX};
    let Some((field, release)) = seal.and_then(|s| Some((s.field, s.release?))) else {
        return;
    };
    let kind = match release {
        Release::Scroll => "scroll",
        Release::Pit | Release::OpenSearchPit => "point in time",
        Release::AsyncSearch => "async search",
        Release::SqlCursor => "sql cursor",
    };
    // The id, or the body to read it from.
    let found = match leftover {
        // Read whole: an id too long to hand out (`continuation::within_cap`) is found too.
        Leftover::Read(bytes) => match leading_id_within(field, bytes, MAX_RELEASED_ID) {
            Some(id) => Ok(id),
            None => return,
        },
        Leftover::Unread(body) => Err(body),
        Leftover::Lost => {
            tracing::info!(
                context = kind,
                "A refused answer's backend context was not freed: its beginning is gone"
            );
            return;
        }
    };
    let Ok(permit) = RELEASES.try_acquire() else {
        tracing::warn!(
            context = kind,
            "A refused answer's backend context was not freed: too many releases under way"
        );
        return;
    };
    let upstream = Arc::clone(&app.upstream);
    let authorization = app
        .config
        .backend
        .authorization
        .as_ref()
        .map(|a| a.0.clone());
    let patience = app.config.backend.answer_timeout;
    let task = async move {
        let _permit = permit;
        let id = match found {
            Ok(id) => id,
            Err(body) => {
                let prefix = tokio::time::timeout(patience, read_prefix(body, LEADING_ID_PREFIX));
                match prefix.await.ok().and_then(|p| leading_id(field, &p)) {
                    Some(id) => id,
                    None => {
                        tracing::info!(context = kind, "A refused answer's backend context was not freed: no id at its beginning");
                        return;
                    }
                }
            }
        };
        let (method, path, body) = es::routes::release_request(release, &id);
        let method =
            http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(http::Method::DELETE);
        let body = body.map(|b| ("application/json", Bytes::from(b)));
        let send = || {
            upstream.own_request(
                method.clone(),
                &path,
                authorization.as_ref(),
                body.clone(),
                64 * 1024,
            )
        };
        match retry_saturated(RELEASE_RETRIES, send).await {
            Ok((status, _)) => tracing::info!(
                context = kind,
                status,
                "Freed the backend context of a refused answer"
            ),
            Err(e) => tracing::warn!(
                context = kind,
                error = %e,
                "A refused answer's backend context was not freed"
            ),
        }
    };
    tokio::spawn(task.instrument(tracing::Span::current()));
}

/// The waits of a context's release between tries while every backend connection is busy
/// (attack17c, L: a release refused by a saturated pool left an async search to its
/// `keep_alive`, days): about a minute in all, the release's permit held.
const RELEASE_RETRIES: &[std::time::Duration] = &[
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(4),
    std::time::Duration::from_secs(15),
    std::time::Duration::from_secs(40),
];

/// `send()`'s outcome, tried again after each of `waits` while it is
/// [`UpstreamError::Saturated`] (nothing was sent); any other outcome ends the tries.
async fn retry_saturated<T, F, Fut>(
    waits: &[std::time::Duration],
    mut send: F,
) -> Result<T, crate::upstream::UpstreamError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::upstream::UpstreamError>>,
{
    let mut waits = waits.iter();
    loop {
        match send().await {
            Err(crate::upstream::UpstreamError::Saturated) => match waits.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => return Err(crate::upstream::UpstreamError::Saturated),
            },
            other => return other,
        }
    }
}

/// Up to `cap` bytes of the beginning of `body` (less when it ends or fails first).
async fn read_prefix(mut body: AnswerBody, cap: usize) -> Vec<u8> {
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    while out.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let n = data.len().min(cap - out.len());
                    out.extend_from_slice(&data[..n]);
                }
            }
            _ => break,
        }
    }
    out
}

/// Beyond the answer's copies, what sealing may claim (the sealed ids and sort values are
/// longer than the backend's) without going back to the budget.
const SEAL_SLACK: usize = 256 * 1024;

/// The memory an answer's rewrite needs was refused: 429 while others hold the budget, 502
/// (an answer too large to rewrite) when it could never fit.
fn answer_refused(refused: es::Rejection) -> ProxyError {
    match refused.kind {
        es::RejectKind::Busy => ProxyError::Busy,
        // An id longer than esgate opens (`continuation::within_cap`, rel26): 400, saying so.
        es::RejectKind::OverLimit => ProxyError::Rejected(refused),
        _ => ProxyError::Upstream(crate::upstream::UpstreamError::Broken),
    }
}

/// Reads a backend answer esgate must rewrite: identity-encoded only (esgate asked for it;
/// anything else cannot be inspected, and relaying it could hand out what should have been
/// rewritten), capped (an answer that announces more is refused before a byte is read), within
/// the shared body budget, and whole within `backend.answer_timeout` (504 otherwise).
async fn read_answer(
    app: &App,
    headers: &HeaderMap,
    body: &mut AnswerBody,
    limit: usize,
    start: &mut crate::body::ReadStart,
    room: BudgetHold,
) -> Result<(Bytes, BudgetHold), ProxyError> {
    use crate::upstream::UpstreamError;
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        return Err(ProxyError::Upstream(UpstreamError::Broken));
    }
    if http_body::Body::size_hint(&*body)
        .exact()
        .is_some_and(|n| n > limit as u64)
    {
        return Err(ProxyError::Upstream(UpstreamError::Broken));
    }
    let read = crate::body::read_answer_keeping_start(
        body,
        limit,
        &app.body_budget,
        app.config.limits.buffered_wait,
        start,
        room,
    );
    match tokio::time::timeout(app.config.backend.answer_timeout, read).await {
        Err(_) => Err(ProxyError::Upstream(UpstreamError::Timeout)),
        Ok(read) => read.map_err(|e| match e {
            ReadError::Busy => ProxyError::Busy,
            ReadError::Stalled => ProxyError::Upstream(UpstreamError::Timeout),
            ReadError::TooLarge | ReadError::Broken => ProxyError::Upstream(UpstreamError::Broken),
        }),
    }
}

/// What [`enforce`] gives the request it permits.
struct Enforced {
    /// The permit the upstream request is built from.
    permit: es::Permit,
    /// The binding its continuation ids were checked under (answers seal theirs with it).
    binding: es::ids::continuation::Binding,
    hold: BudgetHold,
    /// The client's body (the permit's body may send spans of it: `es::ForwardBody::spans`).
    body: Option<Bytes>,
    /// An `_msearch`'s searches (`None`: not an `_msearch`).
    searches: Option<usize>,
}

/// The enforcement phases for a `read` token: plan, read the body, prepare, resolve indices,
/// authorize.
async fn enforce(
    app: &Arc<App>,
    snapshot: &Snapshot,
    token: &Token,
    parts: &Parts,
    client: &hygiene::Head<'_>,
    body: ClientBody,
    ctx: &mut RequestCtx,
) -> Result<Enforced, ProxyError> {
    let derived = snapshot
        .scope(token)
        .map_err(|e| policy::Denied::Dangling(e.to_string()))?;
    // The token's query cost guards, each unset one from `[policies.limits]`.
    let limits = token.limits.or(&app.config.policies.limits);
    let guard = es::dsl::cost::CostGuard {
        max_size: limits.max_size,
        max_buckets: limits.max_buckets,
        timeout_ms: limits.search_timeout_ms,
        empty_buckets: es::request::dialect::EmptyBuckets::MadeFirst,
    };
    let mut scope = es::Scope {
        ids: es::ids::continuation::Binding {
            token_id: Arc::clone(&derived.bound_id),
            key: Arc::clone(&app.id_key),
        },
        guard,
        filters: Arc::clone(&derived.filters),
        indices: Arc::clone(&derived.indices),
    };
    let head = es::RequestHead {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_type: value_str(client.content_type, header::CONTENT_TYPE)?,
        content_encoding: value_str(client.content_encoding, header::CONTENT_ENCODING)?,
    };
    // An `_msearch` of more searches than the token's `max_msearch_searches` is refused as
    // its lines are split (msearch27).
    let max_searches = limits.max_msearch_searches;
    let plan = es::plan(&head, &scope)?.searches_at_most(max_searches);
    ctx.event.action = Some(plan.action);
    // The body's share of the memory budget is held until the upstream request is sent.
    let (bytes, hold) = if plan.needs_body() {
        let (bytes, hold) = read_body(app, &parts.headers, body).await?;
        ctx.bytes_in = bytes.len() as u64;
        (Some(bytes), hold)
    } else {
        (None, BudgetHold::default())
    };
    scope.guard.empty_buckets =
        empty_buckets(app, bytes.as_deref(), head.content_encoding.is_some()).await;
    let raw = bytes.as_ref().map_or(0, Bytes::len);
    let prepare = |plan, meter: &es::memory::Meter<'_>| {
        es::prepare_with_limit(
            plan,
            bytes.as_deref(),
            &head,
            &scope,
            app.config.limits.max_body_bytes,
            meter,
        )
    };
    let budget = &app.body_budget;
    let (mut hold, mut noted) = (hold, Noted::default());
    let mut checked = metered_in(budget, raw, &mut hold, &mut noted, |meter| {
        prepare(plan, meter)
    });
    // Refused room while others hold the budget: in line (`metered_in_line`), planned again
    // for each run (boxed: the common path's future stays as it was). The prepared request
    // stays where the check put it (`settle` only reads it: moving it through was three copies
    // of its 824 bytes a request, perf29c).
    if let (Some(room), Err(rejection)) = (settle(raw, &checked, &mut hold, &noted, 0), &checked) {
        let refused = (rejection.clone(), std::mem::take(&mut hold), room);
        let again = |meter: &es::memory::Meter<'_>| {
            prepare(
                es::plan(&head, &scope)?.searches_at_most(max_searches),
                meter,
            )
        };
        (checked, hold) = Box::pin(check_in_line(budget, raw, refused, again)).await;
    }
    let prepared = checked?;
    let searches = prepared.msearch_searches();
    let mut resolution = es::Resolution::default();
    let authorization = app.config.backend.authorization.as_ref().map(|a| &a.0);
    // An msearch may name several expressions: resolve them a few at a time, not one by one.
    for chunk in prepared.to_resolve().chunks(RESOLVE_CONCURRENCY) {
        // One expression (most requests): awaited as it is, without `join_all`'s vectors; a
        // cached one without the lookup's future, which is boxed (issue 10: it made this
        // future, copied into its box on every request, several KB larger).
        if let [expr] = chunk {
            let (expr, names) = match app.upstream.resolver.cached(expr, Instant::now()) {
                Some(names) => (expr.to_string(), names),
                None => Box::pin(resolve_one(app, authorization, expr)).await?,
            };
            resolution.names.insert(expr, names);
            continue;
        }
        let lookups = chunk
            .iter()
            .map(|expr| resolve_one(app, authorization, expr));
        for found in futures_util::future::join_all(lookups).await {
            let (expr, names) = found?;
            resolution.names.insert(expr, names);
        }
    }
    // A histogram its own hard bounds do not bound needs its field's types behind its
    // expression (`upstream::field_types`, cached; range28): asked only then.
    for (expr, fields) in prepared.field_types_needed() {
        // An expression not resolved is refused by `authorize`.
        let Some(names) = resolution.names.get(expr) else {
            continue;
        };
        let types = app.upstream.field_types.types(
            &app.upstream,
            authorization,
            expr,
            fields.names(),
            names,
        );
        let found = types.await?;
        resolution.field_types.insert(expr.to_string(), found);
    }
    // A route of one dialect only (point in time) needs the backend's (cached after once).
    if prepared.needs_dialect() {
        resolution.dialect = Box::pin(app.upstream.dialect(authorization)).await?;
    }
    // What `authorize` writes (an msearch's NDJSON, each header naming its narrowed names) is
    // claimed on top of everything the hold covers: the prepared request's bodies are live.
    let base = hold.bytes();
    let mut permit = metered_in(budget, base, &mut hold, &mut noted, |meter| {
        es::authorize_within(prepared, &resolution, &scope, meter)
    })?;
    // The audit record takes the permit's index list: nothing reads it from the permit later.
    ctx.event.indices = std::mem::take(&mut permit.indices);
    Ok(Enforced {
        permit,
        binding: scope.ids,
        hold,
        body: bytes,
        searches,
    })
}

/// How the backend makes a histogram's empty buckets (`es::dsl::fill`): what its `GET /` said,
/// once read. Until then it is asked (once, cached; one lookup shared by the requests arriving
/// while it is in flight) before a body that may hold a histogram (its text names one, or it is
/// encoded) is prepared; an unknown or failed answer (remembered for
/// `upstream::dialect::UNKNOWN_FOR`, without asking again), and a body that names none (an
/// escaped key), count as made first (fail closed: such a histogram needs bounds).
async fn empty_buckets(
    app: &App,
    body: Option<&[u8]>,
    encoded: bool,
) -> es::request::dialect::EmptyBuckets {
    use es::request::dialect::EmptyBuckets;
    if let Some(settled) = app.upstream.empty_buckets_settled() {
        return settled;
    }
    let may_hold = body.is_some_and(|b| encoded || memchr::memmem::find(b, b"histogram").is_some());
    if !may_hold {
        return EmptyBuckets::MadeFirst;
    }
    let authorization = app.config.backend.authorization.as_ref().map(|a| &a.0);
    match Box::pin(app.upstream.banner(authorization)).await {
        Ok(Some(banner)) => banner.empty_buckets,
        _ => EmptyBuckets::MadeFirst,
    }
}

/// Runs `check` with a meter that claims what a body's decompression and parse hold from the
/// body budget, on top of the `raw` bytes `hold` already covers (`es::memory`): the hold comes
/// back grown by those claims.
pub(super) fn metered<T>(
    app: &App,
    raw: usize,
    mut hold: BudgetHold,
    check: impl FnOnce(&es::memory::Meter<'_>) -> T,
) -> (T, BudgetHold) {
    let checked = metered_in(
        &app.body_budget,
        raw,
        &mut hold,
        &mut Noted::default(),
        check,
    );
    (checked, hold)
}

/// What [`metered_in`] noted of a check's claims.
#[derive(Default)]
struct Noted {
    /// The largest total the budget refused for want of room (`Busy`), if it refused one: the
    /// room the check would have had to go on.
    busy: Option<usize>,
    /// The bytes the check still claims when it ends (`Meter::used`): what it built and keeps.
    used: usize,
}

/// [`metered`] in place, and what it noted of the check's claims: `hold` grown by the check's
/// claims, what it noted written to `noted`, and the check's outcome returned as it came
/// (perf29c: a request's prepared request and permit, 824 and 496 bytes, were copied into and
/// out of the tuples the others return, four copies a request).
fn metered_in<T>(
    budget: &crate::body::BodyBudget,
    raw: usize,
    hold: &mut BudgetHold,
    noted: &mut Noted,
    check: impl FnOnce(&es::memory::Meter<'_>) -> T,
) -> T {
    let hold = std::cell::RefCell::new(hold);
    let busy = std::cell::Cell::new(None::<usize>);
    let grant = |work: usize| {
        let total = raw.saturating_add(work);
        let granted = budget.try_cover(&mut hold.borrow_mut(), total);
        if granted == Err(es::memory::Refused::Busy) {
            busy.set(Some(busy.get().map_or(total, |b| b.max(total))));
        }
        granted
    };
    let meter = es::memory::Meter::new(&grant);
    let checked = check(&meter);
    *noted = Noted {
        busy: busy.get(),
        used: meter.used(),
    };
    checked
}

/// What a request's hold may cover beyond its body and what its checks still claim before the
/// rest is given back ([`metered_in_line`]): the meter asks for twice its last grant, so a large
/// body's checks were granted up to twice what they hold. Below it nothing is given back (a
/// small body's one ask is kept, as before: no release on the common path).
const UNUSED_GRANT_KEPT: usize = 1 << 20;

/// How long a request body's checks refused room wait in the budget's line for the room the
/// others give back (`BodyBudget::wait_in_line`).
const CHECK_ROOM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// [`metered`] for a request body's checks, which `check` can run again: refused for want of
/// room while others hold the budget, the request takes the budget's one place in line, waits
/// for the room the check was refused (the others, refused at once, give theirs back) and runs
/// the check again, until it passes or is refused otherwise; without the place (another
/// request waits), refused at once (rel19: large bodies together past the budget were all
/// refused, each holding its body and refused the room to check it). The check asks for the
/// same room in the same order each time, so each run goes past where the last was refused.
async fn metered_in_line<T>(
    budget: &crate::body::BodyBudget,
    raw: usize,
    mut hold: BudgetHold,
    mut check: impl FnMut(&es::memory::Meter<'_>) -> Result<T, es::Rejection>,
) -> (Result<T, es::Rejection>, BudgetHold) {
    let mut noted = Noted::default();
    let checked = metered_in(budget, raw, &mut hold, &mut noted, &mut check);
    match (settle(raw, &checked, &mut hold, &noted, 0), checked) {
        // Boxed: the common path's future stays as small as without the line.
        (Some(room), Err(rejection)) => {
            Box::pin(check_in_line(budget, raw, (rejection, hold, room), check)).await
        }
        (_, checked) => (checked, hold),
    }
}

/// A check's run refused room: the rejection, the hold, and the room it was refused.
type RefusedRoom = (es::Rejection, BudgetHold, usize);

/// [`metered_in_line`] once the check was refused room: in the budget's place in line, if it is
/// free, waiting for the room and running the check again.
async fn check_in_line<T>(
    budget: &crate::body::BodyBudget,
    raw: usize,
    refused: RefusedRoom,
    mut check: impl FnMut(&es::memory::Meter<'_>) -> Result<T, es::Rejection>,
) -> (Result<T, es::Rejection>, BudgetHold) {
    let (mut rejection, mut hold, mut room) = refused;
    let Some(place) = budget.first_in_line() else {
        return (Err(rejection), hold);
    };
    let deadline = Instant::now() + CHECK_ROOM_PATIENCE;
    loop {
        let patience = deadline.saturating_duration_since(Instant::now());
        if budget
            .wait_in_line(&place, &mut hold, room, patience)
            .await
            .is_err()
        {
            return (Err(rejection), hold);
        }
        let mut noted = Noted::default();
        let checked = metered_in(budget, raw, &mut hold, &mut noted, &mut check);
        match (settle(raw, &checked, &mut hold, &noted, room), checked) {
            (Some(again), Err(refused)) => (rejection, room) = (refused, again),
            (_, checked) => return (checked, hold),
        }
    }
}

/// A check's run, settled: passed, its room granted and not used given back (`None`); refused
/// for want of room past `waited_for`, the room it was refused (`Some`: only for a `Busy`
/// rejection); refused otherwise, `None`. Reads the check's outcome without taking it.
fn settle<T>(
    raw: usize,
    checked: &Result<T, es::Rejection>,
    hold: &mut BudgetHold,
    noted: &Noted,
    waited_for: usize,
) -> Option<usize> {
    match checked {
        Ok(_) => {
            // Room granted and not used goes back, for the others (an 8 MiB search held
            // 24 MiB, where its body and what its checks keep are 16).
            let keeps = raw.saturating_add(noted.used);
            if hold.bytes().saturating_sub(keeps) >= UNUSED_GRANT_KEPT {
                hold.keep(keeps);
            }
            None
        }
        Err(e) => match noted.busy {
            Some(room) if e.kind == es::RejectKind::Busy && room > waited_for => Some(room),
            _ => None,
        },
    }
}

/// The names behind one index expression, from the resolver (cached).
async fn resolve_one(
    app: &App,
    authorization: Option<&http::HeaderValue>,
    expr: &str,
) -> Result<(String, Arc<[es::indices::resolution::ResolvedName]>), ProxyError> {
    let names = app
        .upstream
        .resolver
        .resolve(&app.upstream, authorization, expr, Instant::now())
        .await?;
    Ok((expr.to_string(), names))
}

/// A constant name: a `&str` name is parsed again at every lookup.
const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// The client's address: the peer's, or the one a trusted proxy forwarded. `forwarded` says
/// whether the request has a forwarding header at all (`hygiene::Head`): without one, the
/// headers are not looked up again.
fn client_address(
    app: &App,
    peer: IpAddr,
    forwarded: bool,
    headers: &HeaderMap,
) -> Result<IpAddr, ProxyError> {
    let values = |name| -> Vec<&[u8]> {
        if !forwarded {
            return Vec::new();
        }
        headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
    };
    let xff = values(X_FORWARDED_FOR);
    let fwd = values(header::FORWARDED);
    client_ip::client_ip(peer, &xff, &fwd, &app.config.auth.trusted_proxies)
        .map(client_ip::canonical)
        .map_err(|e| ProxyError::BadRequest(e.to_string()))
}

/// The token as the request was planned, checked again just before it is forwarded (rel20): a
/// request's body is read (up to `listen.header_timeout`) and room for it and its answer waited
/// for after its head was authenticated, and a revocation made meanwhile must bite. Nothing
/// changed (the common case: one pointer comparison): only an expiry meanwhile. Else the
/// credential is authenticated and the policy checked again on the current snapshot (a token
/// deleted or reset: 401; its IP filter narrowed, a link deleted: 403), and a token whose plan
/// would differ (permission, limits, filters or indices: its bound scope) refuses the request
/// (503, `TokenChanged`): it was planned under what the token no longer is.
///
/// A time-bound end makes no new snapshot: past `valid_until` (the token's expiry, the end of
/// the rotation overlap its previous secret had, a link's or its credential's expiry) the full
/// check runs on the unchanged snapshot too (attack20d: the fast path checked the token's
/// expiry only, so a previous secret whose overlap ended, or an expired link, while the body
/// was read still went out).
///
/// The pipeline asks it once more, as the upstream pool's gate, when the request had to wait
/// for a backend connection or one was made for it (rel21: up to `backend.connect_timeout`
/// after this check).
fn recheck(app: &App, again: &Recheck<'_>) -> Result<(), ProxyError> {
    let Recheck {
        planned,
        token,
        headers,
        client_ip,
        valid_until,
        spaces,
    } = *again;
    let now = crate::time::now();
    if now < valid_until && app.store.is_current(planned) {
        return Ok(());
    }
    let current = app.store.snapshot();
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let head = hygiene::Head {
        authorization: values.next(),
        authorizations: headers.get_all(header::AUTHORIZATION).iter().count(),
        ..hygiene::Head::default()
    };
    let (again, claims) = credential_token(app, &current, &head, headers, now)?;
    admit(&current, &again, claims.as_ref(), client_ip, now)?;
    if again.id != token.id {
        return Err(auth::AuthError::Unknown.into());
    }
    let same_scope = || match (planned.scope(token), current.scope(&again)) {
        (Ok(before), Ok(now)) => before.bound_id == now.bound_id,
        _ => false,
    };
    if again.permission() != token.permission()
        || again.limits != token.limits
        || (token.permission() != Permission::All && !same_scope())
        || (spaces && again.kibana_spaces != token.kibana_spaces)
    {
        return Err(ProxyError::TokenChanged);
    }
    Ok(())
}

/// What [`recheck`] checks a request against: the snapshot and token its head was
/// authenticated with, and until when that stays valid if nothing changes.
#[derive(Clone, Copy)]
pub(crate) struct Recheck<'a> {
    planned: &'a Snapshot,
    token: &'a Arc<Token>,
    headers: &'a HeaderMap,
    client_ip: std::net::IpAddr,
    /// The first time-bound end of the credential (`UnixTime::MAX`: none).
    valid_until: UnixTime,
    /// The answer states the token's Kibana spaces (`_has_privileges`, answered by esgate):
    /// a change of them is a change of scope too (attack20d).
    spaces: bool,
}

/// The request's token by its credential: a token's secret, or a share link's credential
/// (minted by the Kibana front for one recipient request), whose claims come with it for
/// [`admit`].
fn credential_token(
    app: &App,
    snapshot: &Snapshot,
    head: &hygiene::Head<'_>,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<(Arc<Token>, Option<crate::kibana::session::Claims>), auth::AuthError> {
    match link_credential(head) {
        Some(text) => authenticate_link(app, snapshot, text, now).map(|(t, c)| (t, Some(c))),
        None => authenticate(snapshot, head, headers, now).map(|t| (t, None)),
    }
}

/// Whether the authenticated token may be used now, from `client_ip`: a link credential's
/// link, its token and the recipient's address the credential carries, as the front checked
/// them, again now (a deleted link or a reset token stops Kibana's next query); else the
/// token's expiry and IP filter. Returns the first time-bound end of what it checked (the
/// token's expiry; a rotation's overlap, as the request may have come with the previous
/// secret; the link's and its credential's expiry; `UnixTime::MAX`: none), until when that
/// holds with nothing changed.
fn admit(
    snapshot: &Snapshot,
    token: &Token,
    claims: Option<&crate::kibana::session::Claims>,
    client_ip: IpAddr,
    now: UnixTime,
) -> Result<UnixTime, ProxyError> {
    let ends = match claims {
        Some(claims) => {
            let recipient = claims.recipient.ok_or(auth::AuthError::Unknown)?;
            let (link, _) = crate::kibana::session::check_link(
                snapshot,
                &claims.link_id,
                Some(claims),
                recipient,
                now,
            )?;
            [Some(claims.expires_at), link.expires_at, token.expires_at]
        }
        None => {
            let ip_filter = token
                .ip_filter
                .as_deref()
                .and_then(|name| snapshot.ip_filter(name));
            policy::check(token, ip_filter, client_ip, now)?;
            [
                token.expires_at,
                token.previous_secret_at(now).map(|p| p.expires_at),
                None,
            ]
        }
    };
    Ok(earliest(ends))
}

/// The first of the ends that are set (`UnixTime::MAX`: none), as `flatten().min()` gives it,
/// in a fold the compiler keeps in registers (session 23: the iterator's adapter over the
/// array was about 450 instructions of every request).
fn earliest(ends: [Option<UnixTime>; 3]) -> UnixTime {
    ends.iter().fold(UnixTime::MAX, |first, end| {
        end.map_or(first, |end| end.min(first))
    })
}

/// The share-link credential of the request (`Authorization: Bearer esgl1_...`), if that is
/// its one `Authorization` header.
fn link_credential<'a>(head: &hygiene::Head<'a>) -> Option<&'a str> {
    match (head.authorization, head.authorizations) {
        (Some(v), 1) => link_credential_in(v.as_bytes()),
        _ => None,
    }
}

/// [`crate::kibana::session::credential_in`], asked only of a value holding the link
/// credential's prefix: the credential it finds starts with it, so a value without it has none,
/// and every token's request (`Bearer esg_…`) is settled by one search instead of a UTF-8 check,
/// trims and a split (perf20b).
fn link_credential_in(value: &[u8]) -> Option<&str> {
    static PREFIX: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| {
            memchr::memmem::Finder::new(crate::kibana::session::CREDENTIAL_PREFIX)
        });
    PREFIX.find(value)?;
    crate::kibana::session::credential_in(value)
}

/// A link credential's token and claims: the seal must verify under esgate's key and be
/// unexpired, and name the token it was minted for (the link checks follow in [`admit`]).
fn authenticate_link(
    app: &App,
    snapshot: &Snapshot,
    text: &str,
    now: i64,
) -> Result<(Arc<Token>, crate::kibana::session::Claims), auth::AuthError> {
    let claims = crate::kibana::session::open_credential(
        &crate::kibana::credential_key(&app.id_key),
        text,
        now,
    )
    .ok_or(auth::AuthError::Unknown)?;
    let token = snapshot
        .token(&claims.token_id)
        .cloned()
        .ok_or(auth::AuthError::Unknown)?;
    Ok((token, claims))
}

/// The request's token by its `Authorization` values; the one-value case (nearly every
/// request) without collecting them again.
fn authenticate(
    snapshot: &Snapshot,
    head: &hygiene::Head<'_>,
    headers: &HeaderMap,
    now: i64,
) -> Result<Arc<Token>, auth::AuthError> {
    let credential = if head.authorizations <= 1 {
        credential::parse(head.authorization.map(|v| v.as_bytes()).as_slice())?
    } else {
        let values: Vec<&[u8]> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        credential::parse(&values)?
    };
    auth::authenticate(snapshot, &credential, now)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&str>, ProxyError> {
    value_str(headers.get(&name), name)
}

/// [`header_str`] of a value already found (`hygiene::Head`'s): the same text, or the same
/// refusal.
fn value_str(
    value: Option<&http::HeaderValue>,
    name: header::HeaderName,
) -> Result<Option<&str>, ProxyError> {
    match value {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ProxyError::BadRequest(format!("the {name} header is not ASCII"))),
    }
}

async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: ClientBody,
) -> Result<(Bytes, BudgetHold), ProxyError> {
    let limit = app.config.limits.max_body_bytes;
    let body = match body {
        ClientBody::Stream(body) => body,
        ClientBody::Whole(bytes) if bytes.len() > limit => {
            return Err(ProxyError::BodyTooLarge(limit))
        }
        ClientBody::Whole(bytes) => return Ok((bytes, BudgetHold::default())),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    // No body (a GET search): what reading it would give, without the read, its timer and its
    // budget charge (issue 10; `body::tests::an_ended_body_reads_empty_even_without_budget`).
    if body.is_end_stream() {
        return Ok((Bytes::new(), BudgetHold::default()));
    }
    // A body announced but never sent must not hold the request forever.
    let read = tokio::time::timeout(
        app.config.limits.header_timeout,
        read_budgeted(body, limit, &app.body_budget),
    );
    match read.await {
        Err(_) => Err(ProxyError::BodyTimeout),
        Ok(r) => r.map_err(|e| match e {
            ReadError::TooLarge => ProxyError::BodyTooLarge(limit),
            ReadError::Broken => {
                ProxyError::BadRequest("the request body could not be read".into())
            }
            ReadError::Busy => ProxyError::Busy,
            ReadError::Stalled => ProxyError::BodyTimeout,
        }),
    }
}

/// An `all` token's request read whole and checked against esgate's token store index (which
/// lives in the backend cluster): its path, query and body may not reach it.
async fn check_store_reach(
    app: &App,
    store: &str,
    parts: &Parts,
    body: ClientBody,
) -> Result<(Bytes, BudgetHold), ProxyError> {
    let (bytes, hold) = if body.is_end_stream() {
        (Bytes::new(), BudgetHold::default())
    } else {
        read_body(app, &parts.headers, body).await?
    };
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    let (why, hold) = if encoded && !bytes.is_empty() {
        (
            Some("a compressed body cannot be checked for esgate's token store index"),
            hold,
        )
    } else {
        // The body's trees are charged to the budget beside its bytes while it is checked.
        let (why, hold) = metered_in_line(&app.body_budget, bytes.len(), hold, |meter| {
            es::indices::store_guard::request_reaches(
                store,
                parts.uri.path(),
                parts.uri.query(),
                &bytes,
                meter,
            )
        })
        .await;
        (why?, hold)
    };
    match why {
        Some(why) => Err(es::Rejection::forbidden(format!(
            "esgate's token store index is not reachable through esgate: {why}"
        ))
        .into()),
        None => Ok((bytes, hold)),
    }
}

/// The store index no `read` token may reach and an `all` token's requests are checked
/// against (`StoreKind::guarded_index`).
fn guarded_store(app: &App) -> Option<&str> {
    app.config.store.guarded_index()
}

/// A request's id: 16 hex digits of a 64-bit number from a per-thread `StdRng` (ChaCha12,
/// seeded once per thread from the OS: a cryptographically secure generator), drawn without
/// `thread_rng`'s shared handle and reseeding checks (issue 10 measured `thread_rng` at about
/// 350 instructions per request; this draw was not measured). The id names a request in logs,
/// the audit line and `X-Opaque-Id`, which the backend echoes and a `read` token gets back: an
/// id must not tell the ids that follow (other tokens' requests, and how many the thread served
/// in between), so it is never a counter seen through a public bijection (SplitMix64 was
/// inverted from one id: review of issue 10, `tests::a_request_id_does_not_predict_the_next_ones`).
/// Two ids meet with the odds of two random 64-bit numbers.
pub(crate) fn request_id() -> String {
    use rand::{RngCore, SeedableRng};
    thread_local! {
        static IDS: std::cell::RefCell<rand::rngs::StdRng> =
            std::cell::RefCell::new(rand::rngs::StdRng::from_entropy());
    }
    hex16(IDS.with(|rng| rng.borrow_mut().next_u64()))
}

/// 16 lowercase hex digits (`{:016x}`), without `fmt`: written into an array and copied once
/// (a `String::push` a digit checked the capacity each time, perf20b).
fn hex16(n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((n >> ((15 - i) * 4)) & 0xf) as usize];
    }
    String::from_utf8(text.to_vec()).unwrap_or_else(|_| format!("{n:016x}"))
}

/// A request's audit record and metrics, written when it is dropped: with its answer's body
/// ([`AuditedBody`]), or, when the client goes away before its answer (an HTTP/2 stream reset,
/// a closed connection: the request's handling is dropped wherever it waits), as the request
/// stands then (attack21b: such a request left no record at all, though it may have been
/// forwarded and acted on, an `all` token's `DELETE` included: any client could keep its
/// requests out of the audit log, with `audit.on_failure = "closed"` too).
struct Record {
    ctx: RequestCtx,
    /// How the request ended (`"allowed"` or the refusal's code); `None`: never answered.
    outcome: Option<&'static str>,
    /// Answer body bytes sent.
    bytes: u64,
    app: Arc<App>,
}

/// The reason recorded for a request whose client went away before its answer, once it was
/// forwarded.
const CLIENT_GONE: &str = "the client closed the request before its answer";

/// The same, before it was forwarded (while its checks ran, or while it waited for a backend
/// connection).
const CLIENT_GONE_UNSENT: &str = "the client closed the request before it was forwarded";

/// The reason recorded for an answer whose body the backend stopped sending
/// (`backend.body_idle_timeout`) after its head was relayed.
const ANSWER_STALLED: &str = "the answer was cut short: the backend stopped sending it";

/// The reason recorded for an answer whose body broke off (the backend's connection closed or
/// failed mid-body) after its head was relayed.
const ANSWER_BROKE_OFF: &str = "the answer was cut short: the backend's answer broke off";

/// The outcome counted for a request whose client went away before its answer
/// (`esgate_decisions_total`).
const CLIENT_CLOSED: &str = "client_closed";

impl Drop for Record {
    fn drop(&mut self) {
        let ctx = &mut self.ctx;
        let total = ctx.started.elapsed();
        ctx.event.bytes = self.bytes;
        ctx.event.duration_ms = total.as_secs_f64() * 1000.0;
        let outcome = match self.outcome {
            Some(outcome) => outcome,
            None => {
                // Never answered: nginx's 499. Handed to a backend connection, it was allowed
                // and may have been acted on (a served request's record: with
                // `audit.on_failure = "closed"`, a stall that drops it refuses); else nothing
                // was done for it, like a refusal's.
                let forwarded = ctx.forwarded.load(std::sync::atomic::Ordering::Relaxed);
                ctx.event.status = 499;
                ctx.event.reason = Some(
                    if forwarded {
                        CLIENT_GONE
                    } else {
                        CLIENT_GONE_UNSENT
                    }
                    .to_owned(),
                );
                ctx.event.decision = if forwarded { "allow" } else { "deny" };
                ctx.event.refused = !forwarded;
                // The address's text leaves the record while the request is checked
                // (`pipeline`).
                if ctx.event.client.is_empty() {
                    ctx.event.client = ip_text(ctx.client);
                }
                CLIENT_CLOSED
            }
        };
        // Counted like any answer (attack21c: a 499 was in no metric).
        self.app.metrics.record(&Finished {
            token_id: ctx.event.token_id.as_deref(),
            action: ctx.event.action.unwrap_or("none"),
            allowed: ctx.event.decision == "allow",
            outcome,
            status: ctx.event.status,
            total,
            backend: ctx.backend,
            // No answer head: no time of esgate's own up to it.
            own: self.outcome.map(|_| ctx.own),
            bytes_in: ctx.bytes_in,
            bytes_out: self.bytes,
        });
        self.app.audit.data(&ctx.event);
    }
}

/// A response body that counts what it relays and, when it ends or is dropped, writes the
/// audit event and the metrics of its request ([`Record`]).
struct AuditedBody {
    inner: Body,
    bytes: u64,
    done: Option<Record>,
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            // The client had the head and gets a cut stream; the record says why (rel22: it
            // read like a whole answer).
            Poll::Ready(Some(Err(e))) => {
                if let Some(record) = &mut self.done {
                    record.ctx.event.reason = Some(
                        if e.is::<crate::body::Stalled>() {
                            ANSWER_STALLED
                        } else {
                            ANSWER_BROKE_OFF
                        }
                        .to_owned(),
                    );
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if let Some(record) = &mut self.done {
            record.bytes = self.bytes;
        }
    }
}

/// The request ids' predictor the tests hold esgate's ids against (shared with `it::opaque_id`).
#[cfg(test)]
#[path = "../../tests/it/support/splitmix.rs"]
mod splitmix;

#[cfg(test)]
mod tests {
    use super::*;

    /// Attack26d (pinned, no finding): `X-Elasticsearch-Async-Is-Running` counts only as the
    /// structured-field booleans Elasticsearch sends (`?1`, `?0`), given once: any other value
    /// (`true`, spaces, parameters, a case change) or a second value is not read, and the body
    /// says (`async_search::is_running`), so an answer whose headers disagree with each other
    /// never frees a place on their word.
    #[test]
    fn the_async_is_running_header_counts_only_one_boolean() {
        let read = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    ASYNC_IS_RUNNING,
                    http::HeaderValue::from_bytes(v).expect("a header value"),
                );
            }
            async_is_running_header(&h)
        };
        assert_eq!(read(&[b"?1"]), Some(true));
        assert_eq!(read(&[b"?0"]), Some(false));
        for odd in [
            &[][..],
            &[&b"?0"[..], b"?0"],
            &[b"?0", b"?1"],
            &[b"true"],
            &[b"false"],
            &[b"0"],
            &[b"?0 "],
            &[b"?0;x=1"],
            &[b"?O"],
            &[b""],
        ] {
            assert_eq!(read(odd), None, "{odd:?}");
        }
    }

    /// attack17c (L): a context's release refused by a saturated pool is tried again after
    /// each wait; any other outcome, or the waits run out, ends the tries.
    #[tokio::test]
    async fn a_release_is_tried_again_while_the_pool_is_saturated() {
        use crate::upstream::UpstreamError;
        let waits = [std::time::Duration::from_millis(1); 3];
        // Runs the plan's outcomes in order; how many tries were made.
        async fn run(
            plan: Vec<Result<u16, UpstreamError>>,
            waits: &[std::time::Duration],
        ) -> (Result<u16, UpstreamError>, usize) {
            let mut plan = plan.into_iter();
            let mut calls = 0;
            let outcome = retry_saturated(waits, || {
                calls += 1;
                std::future::ready(plan.next().expect("no more tries planned"))
            })
            .await;
            (outcome, calls)
        }
        let saturated = || Err(UpstreamError::Saturated);
        let (outcome, calls) = run(vec![saturated(), saturated(), Ok(200)], &waits).await;
        assert!(matches!(outcome, Ok(200)));
        assert_eq!(calls, 3);
        let (outcome, calls) = run((0..4).map(|_| saturated()).collect(), &waits).await;
        assert!(matches!(outcome, Err(UpstreamError::Saturated)));
        assert_eq!(calls, 4, "one try, then one after each wait");
        let (outcome, calls) = run(vec![Err(UpstreamError::Timeout)], &waits).await;
        assert!(matches!(outcome, Err(UpstreamError::Timeout)));
        assert_eq!(calls, 1);
    }

    /// A check that claims `steps` of `step` bytes and keeps `kept` of them; counts its runs.
    fn claiming(
        steps: usize,
        step: usize,
        kept: usize,
        runs: &std::cell::Cell<usize>,
    ) -> impl FnMut(&es::memory::Meter<'_>) -> Result<(), es::Rejection> + '_ {
        move |meter| {
            runs.set(runs.get() + 1);
            for _ in 0..steps {
                meter.take(step)?;
            }
            meter.give((steps * step).saturating_sub(kept));
            Ok(())
        }
    }

    /// rel19: a large body's checks give back, once they pass, the room granted beyond the
    /// body and what they keep (the meter asks for twice its last grant: an 8 MiB body whose
    /// checks claimed 8 MiB held 24); a small body's keeps its one ask (no release).
    #[tokio::test]
    async fn checks_that_pass_give_back_room_granted_and_not_used() {
        use crate::body::BodyBudget;
        let budget = BodyBudget::new(64 << 20);
        let runs = std::cell::Cell::new(0);
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 8 << 20).unwrap();
        let check = claiming(129, 64 << 10, 8 << 20, &runs);
        let (checked, hold) = metered_in_line(&budget, 8 << 20, hold, check).await;
        assert!(checked.is_ok());
        assert_eq!(hold.bytes(), 16 << 20);
        drop(hold);
        // What they keep stays held; a small body's grant is kept whole.
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 8 << 20).unwrap();
        let check = claiming(129, 64 << 10, 6 << 20, &runs);
        let (_, hold) = metered_in_line(&budget, 8 << 20, hold, check).await;
        assert_eq!(hold.bytes(), 14 << 20);
        let mut small = BudgetHold::default();
        budget.try_cover(&mut small, 2048).unwrap();
        let (_, small) = metered_in_line(&budget, 2048, small, claiming(1, 1024, 0, &runs)).await;
        assert_eq!(small.bytes(), 2048 + 16 * 1024);
        assert_eq!(runs.get(), 3);
    }

    /// rel19: a check refused room while others hold the budget takes the one place in line,
    /// waits for the room they give back and runs again; a second one refused meanwhile is
    /// refused at once (`Busy`), and gives back what it held.
    #[tokio::test]
    async fn a_check_refused_room_waits_in_line_and_runs_again() {
        // The checks run on one thread, as a request's do.
        tokio::task::LocalSet::new().run_until(in_line()).await;
    }

    async fn in_line() {
        use crate::body::BodyBudget;
        let budget = BodyBudget::new(64 * 1024);
        let mut others = BudgetHold::default();
        budget.try_cover(&mut others, 40 * 1024).unwrap();
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 8 * 1024).unwrap();
        let waiting = {
            let budget = budget.clone();
            tokio::task::spawn_local(async move {
                let runs = std::cell::Cell::new(0);
                let check = claiming(4, 8 * 1024, 32 * 1024, &runs);
                let (checked, hold) = metered_in_line(&budget, 8 * 1024, hold, check).await;
                (checked.is_ok(), hold.bytes(), runs.get())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits in line");
        // Another check refused meanwhile: refused at once, one run.
        let runs = std::cell::Cell::new(0);
        let mut second = BudgetHold::default();
        budget.try_cover(&mut second, 1024).unwrap_or_default();
        let (checked, second) =
            metered_in_line(&budget, 1024, second, claiming(4, 8 * 1024, 0, &runs)).await;
        let refused = checked.expect_err("refused at once");
        assert_eq!((refused.kind, runs.get()), (es::RejectKind::Busy, 1));
        drop(second);
        drop(others);
        let (passed, held, runs) = waiting.await.unwrap();
        assert!(passed);
        assert_eq!(held, 40 * 1024);
        assert!(runs >= 2, "{runs}");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let cases = [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "1.20.199.250",
            "::1",
            "::ffff:10.0.0.1",
            "2001:db8::8a2e:370:7334",
        ];
        for case in cases {
            let ip: IpAddr = case.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string(), "{case}");
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 0, octet, 9]);
            assert_eq!(ip_text(ip), ip.to_string());
            let ip = IpAddr::from([255 - octet, octet, octet / 2, octet.wrapping_mul(7)]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn the_audit_path_keeps_the_first_512_characters() {
        let long_ascii = "a".repeat(600);
        let long_wide = "é".repeat(300);
        let cases: [(&str, String); 4] = [
            ("/logs/_search", "/logs/_search".into()),
            (&long_ascii, "a".repeat(512)),
            (&long_wide, "é".repeat(300)),
            (&"é".repeat(600), "é".repeat(512)),
        ];
        for (path, kept) in cases {
            assert_eq!(audit_path(path), kept);
            assert_eq!(audit_path(path), path.chars().take(512).collect::<String>());
        }
    }

    /// perf20b: the prefix search in front of `credential_in` finds exactly the link
    /// credentials `credential_in` finds alone: every scheme and spacing around a link
    /// credential, a token's secret, prefixes cut short or mis-cased, non-ASCII and
    /// Unicode whitespace (which `trim` removes), invalid UTF-8.
    #[test]
    fn the_link_prefix_search_finds_exactly_what_credential_in_finds() {
        use crate::kibana::session::credential_in;
        let mut values: Vec<Vec<u8>> = Vec::new();
        for scheme in [
            "Bearer", "bearer", "BEARER", "Basic", "ApiKey", "", "Bearer\t",
        ] {
            for gap in [" ", "  ", "\t", " \u{a0}", "\u{2003}", ""] {
                for value in [
                    "esgl1_x.y",
                    "esgl1_",
                    "esgl1",
                    "ESGL1_x",
                    "esg_0123",
                    " esgl1_x ",
                    "x esgl1_x",
                    "esgl1_x\u{85}",
                    "\u{a0}esgl1_x",
                ] {
                    for lead in ["", " ", "\u{3000}"] {
                        values.push(format!("{lead}{scheme}{gap}{value}").into_bytes());
                    }
                }
            }
        }
        values.extend([
            b"\xff".to_vec(),
            b"Bearer esgl1_\xff".to_vec(),
            b"Bearer \xffesgl1_x".to_vec(),
            b"esgl1_".to_vec(),
            Vec::new(),
        ]);
        let mut found = 0;
        for v in &values {
            assert_eq!(link_credential_in(v), credential_in(v), "{v:?}");
            found += usize::from(credential_in(v).is_some());
        }
        assert!(found > 20, "the cases hold link credentials: {found}");
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_as_format_wrote_them() {
        for n in [0, 1, 0xf, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            assert_eq!(hex16(n), format!("{n:016x}"));
        }
        let id = request_id();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn request_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..100_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 100_000);
        let other = std::thread::spawn(|| (0..1000).map(|_| request_id()).collect::<Vec<_>>())
            .join()
            .unwrap();
        assert!(other.iter().all(|id| !ids.contains(id)));
    }

    /// A request id says nothing of the next ones (review of issue 10): a client sees its own
    /// (the backend echoes `X-Opaque-Id`, which a `read` token gets back), and ids that follow
    /// from it would tell it the ids of other tokens' requests and how many the thread served
    /// in between. Inverting SplitMix64's output gives its counter: the next id must not be
    /// the counter's next output (nor any of the next thousand).
    #[test]
    fn a_request_id_does_not_predict_the_next_ones() {
        use super::splitmix::{mix, successors, unmix};
        for n in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(unmix(mix(n)), n);
        }
        let seen = u64::from_str_radix(&request_id(), 16).unwrap();
        let predicted: std::collections::HashSet<String> =
            successors(seen, 1000).into_iter().map(hex16).collect();
        for _ in 0..1000 {
            let next = request_id();
            assert!(!predicted.contains(&next), "{next} was predictable");
        }
    }

    /// Session 23: the fold gives what `flatten().min()` gave, for every combination of unset
    /// ends and values at the extremes.
    #[test]
    fn the_earliest_end_is_the_least_of_those_set() {
        let values = [
            None,
            Some(UnixTime::MIN),
            Some(-1),
            Some(0),
            Some(1),
            Some(1_700_000_000),
            Some(UnixTime::MAX - 1),
            Some(UnixTime::MAX),
        ];
        for a in values {
            for b in values {
                for c in values {
                    let ends = [a, b, c];
                    let reference = ends.into_iter().flatten().min().unwrap_or(UnixTime::MAX);
                    assert_eq!(earliest(ends), reference, "{ends:?}");
                }
            }
        }
    }

    #[test]
    fn the_opaque_id_names_the_token_and_the_request() {
        assert_eq!(opaque_id("tok_a", "00ff"), "esgate:tok_a:00ff");
        assert_eq!(opaque_id("", ""), "esgate::");
    }
}
