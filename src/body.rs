//! The body type of every response esgate sends, and helpers to build and read bodies.
//!
//! Capped reads gather a body in blocks joined once at its exact size, so a body read whole
//! holds about its own size. [`BodyBudget`] is the memory every inspected request body shares
//! (beyond it: 429); a read is covered for what it really holds (the blocks' capacity and the
//! transport's read buffers of the chunks kept as received), as `tests/body_memory.rs` checks
//! with a counting allocator. `proxy::metered` lends the budget to the es crate's `Meter`,
//! which a body's decompression and parses claim from before they allocate. A body whose
//! checks were refused room waits in the budget's one place in line
//! ([`BodyBudget::wait_in_line`]) for what the others give back, and is checked again.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, Limited};

use crate::es::memory::Refused;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response or upstream-request body: either bytes esgate built or a stream it relays.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Bytes esgate built in memory (a sealed or rewritten answer, up to 256 MiB), whose share of
/// the [`BodyBudget`] stays held until they are sent: handed out in slices, so the body (and
/// with it the hold) is dropped only once the last slice is taken, when the connection has
/// written all but its own buffer's worth, or when the connection is gone. A client that reads
/// slowly holds the budget, not memory nobody counts (session 12).
pub fn held(bytes: Bytes, hold: BudgetHold) -> Body {
    if hold.kib == 0 {
        return full(bytes);
    }
    Held {
        rest: bytes,
        _hold: hold,
    }
    .boxed()
}

/// A slice of a [`held`] body: small enough that the connection asks for the next one only
/// once it has written most of the last.
const HELD_SLICE: usize = 64 * 1024;

struct Held {
    rest: Bytes,
    _hold: BudgetHold,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let n = self.rest.len().min(HELD_SLICE);
        std::task::Poll::Ready(match n {
            0 => None,
            n => Some(Ok(http_body::Frame::data(self.rest.split_to(n)))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A backend answer's body sent nothing for its idle timeout (see `upstream::AnswerBody`).
#[derive(Debug, thiserror::Error)]
#[error("the backend stopped sending its answer")]
pub struct Stalled;

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    Broken,
    /// The sender stopped sending ([`Stalled`]).
    Stalled,
    /// The shared [`BodyBudget`] is spent: other requests hold the memory.
    Busy,
}

/// Bytes that request bodies being inspected may hold at once, across every request, so that
/// many large bodies arriving together cannot exhaust memory (each is also capped on its own).
/// Counted in KiB; a request's share is returned when its [`BudgetHold`] is dropped.
#[derive(Clone)]
pub struct BodyBudget {
    kib: std::sync::Arc<tokio::sync::Semaphore>,
    total_kib: usize,
    /// The largest transport read buffer a client body's chunk may be a slice of
    /// ([`BodyBudget::with_read_buffer`]): what a chunk kept as received is covered for.
    chunk_buffer: usize,
    /// The one request body's checks that may wait for room ([`BodyBudget::first_in_line`]).
    line: std::sync::Arc<Line>,
}

/// The budget's line: at most one request's checks wait for room at a time, and while one
/// waits, the room it still lacks is kept from request bodies arriving (rel19: six 8 MiB bodies
/// under a 32 MiB budget, each read whole and its checks refused at once for want of room,
/// were all refused 429 now and then, and all but one nearly always).
#[derive(Default)]
struct Line {
    /// Whether a request waits ([`InLine`] is its place).
    taken: std::sync::atomic::AtomicBool,
    /// The KiB the waiting request still lacks: request bodies being read take only what is
    /// free beyond it.
    short_kib: std::sync::atomic::AtomicUsize,
}

/// The place of the one request whose checks may wait for room ([`BodyBudget::wait_in_line`]);
/// given up on drop, so a request cancelled while it waits leaves the line free.
pub struct InLine {
    line: std::sync::Arc<Line>,
}

impl Drop for InLine {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.line.short_kib.store(0, Ordering::Relaxed);
        self.line.taken.store(false, Ordering::Release);
    }
}

/// How long [`BodyBudget::wait_in_line`] first waits before it looks again; each wait after is
/// twice the last, up to [`LINE_RETRY_LAST`].
const LINE_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(2);
const LINE_RETRY_LAST: std::time::Duration = std::time::Duration::from_millis(50);

/// How long [`BodyBudget::wait_for_room`] first waits before it tries again; each wait after
/// is twice the last, up to [`ROOM_RETRY_LAST`] (many waiting scrolls wake a few times a
/// second each, not fifty).
const ROOM_RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(10);
const ROOM_RETRY_LAST: std::time::Duration = std::time::Duration::from_millis(250);

/// A request's share of the [`BodyBudget`]; released on drop.
#[derive(Default)]
pub struct BudgetHold {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// KiB held: bytes read so far, rounded up once (not once per chunk).
    kib: u32,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let kib = (bytes / 1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        BodyBudget {
            kib: std::sync::Arc::new(tokio::sync::Semaphore::new(kib)),
            total_kib: kib,
            chunk_buffer: 2 * crate::server::H1_READ_BUF,
            line: std::sync::Arc::default(),
        }
    }

    /// The budget for bodies read through HTTP/1 read buffers of up to `bytes` too (hyper's
    /// `max_buf_size`, `server::h1_read_buffer`; never less than the default's): a chunk is a
    /// slice of a buffer of up to twice that (a buffer still holding unread bytes grows by
    /// doubling), which a chunk kept as received keeps allocated until it is copied
    /// (`read_charged`). A reload keeps the largest (connections accepted before it keep
    /// their buffers).
    pub fn with_read_buffer(mut self, bytes: usize) -> BodyBudget {
        self.chunk_buffer = self.chunk_buffer.max(2 * bytes);
        self
    }

    /// The budget's one place in line for a request whose checks were refused room
    /// ([`BodyBudget::wait_in_line`]), or `None` while another request holds it: then the
    /// request is refused at once, and gives back what it holds to the one waiting.
    pub fn first_in_line(&self) -> Option<InLine> {
        use std::sync::atomic::Ordering;
        self.line
            .taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(InLine {
            line: std::sync::Arc::clone(&self.line),
        })
    }

    /// Grows `hold` to cover `total` bytes (whole KiB), from the place in line `_place`: takes
    /// what is free as others give it back (request bodies arriving meanwhile take only what is
    /// free beyond what it still lacks; answers in flight go first, as they do in the queue),
    /// for up to `patience`. `Busy` when the room did not come (what it took stays in `hold`,
    /// returned when the caller drops it), `TooLarge` when `total` could never fit. Only one
    /// request waits, and it waits for holds that are all released without waiting for it: no
    /// two requests wait for each other.
    pub async fn wait_in_line(
        &self,
        _place: &InLine,
        hold: &mut BudgetHold,
        total: usize,
        patience: std::time::Duration,
    ) -> Result<(), Refused> {
        use std::sync::atomic::Ordering;
        let needed = total.div_ceil(1024);
        if needed > self.total_kib {
            return Err(Refused::TooLarge);
        }
        let needed = u32::try_from(needed).map_err(|_| Refused::TooLarge)?;
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = LINE_RETRY_FIRST;
        loop {
            let more = needed.saturating_sub(hold.kib);
            self.line.short_kib.store(more as usize, Ordering::Relaxed);
            if more == 0 {
                return Ok(());
            }
            let free = u32::try_from(self.kib.available_permits()).unwrap_or(u32::MAX);
            let take = more.min(free);
            if take > 0 {
                if let Ok(permit) = std::sync::Arc::clone(&self.kib).try_acquire_many_owned(take) {
                    let kib = hold.kib + take;
                    hold.add(permit, kib);
                    continue;
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Refused::Busy);
            }
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(LINE_RETRY_LAST);
        }
    }

    /// Grows `hold` to cover `total` bytes (whole KiB) at once, for the memory a request's
    /// checks claim as they parse its body (`es::memory`): `Busy` while others hold the
    /// budget, `TooLarge` when `total` is more than the whole budget.
    pub fn try_cover(&self, hold: &mut BudgetHold, total: usize) -> Result<(), Refused> {
        let needed = total.div_ceil(1024);
        if needed > self.total_kib {
            return Err(Refused::TooLarge);
        }
        let needed = u32::try_from(needed).map_err(|_| Refused::TooLarge)?;
        let more = needed.saturating_sub(hold.kib);
        if more == 0 {
            return Ok(());
        }
        let permit = std::sync::Arc::clone(&self.kib)
            .try_acquire_many_owned(more)
            .map_err(|_| Refused::Busy)?;
        hold.add(permit, needed);
        Ok(())
    }

    /// Grows `hold` to cover `total` bytes (whole KiB), waiting up to `patience` for others to
    /// release theirs: `Busy` when they did not, `TooLarge` when `total` could never fit. For
    /// the memory a backend answer's rewrite will need, once the backend has done its work.
    pub async fn wait_to_cover(
        &self,
        hold: &mut BudgetHold,
        total: usize,
        patience: std::time::Duration,
    ) -> Result<(), ReadError> {
        self.cover(hold, total, Some(patience)).await
    }

    /// Grows `hold` to cover `total` bytes (whole KiB). Without `patience` a spent budget is
    /// `Busy` at once (waiting would let slow senders pin memory for everyone); with it, waits
    /// that long for others to release theirs, and an answer larger than the whole budget (it
    /// could never fit) is `TooLarge`.
    async fn cover(
        &self,
        hold: &mut BudgetHold,
        total: usize,
        patience: Option<std::time::Duration>,
    ) -> Result<(), ReadError> {
        let needed = total.div_ceil(1024);
        let never_fits = || match patience {
            Some(_) => ReadError::TooLarge,
            None => ReadError::Busy,
        };
        if patience.is_some() && needed > self.total_kib {
            return Err(never_fits());
        }
        let needed = u32::try_from(needed).map_err(|_| never_fits())?;
        let more = needed.saturating_sub(hold.kib);
        if more == 0 {
            return Ok(());
        }
        let kib = std::sync::Arc::clone(&self.kib);
        let permit = match patience {
            None => {
                // A request body takes only what is free beyond what the request waiting in
                // line still lacks ([`BodyBudget::wait_in_line`]).
                let short = self
                    .line
                    .short_kib
                    .load(std::sync::atomic::Ordering::Relaxed);
                if short > 0 && kib.available_permits() < short.saturating_add(more as usize) {
                    return Err(ReadError::Busy);
                }
                kib.try_acquire_many_owned(more)
                    .map_err(|_| ReadError::Busy)?
            }
            Some(p) => tokio::time::timeout(p, kib.acquire_many_owned(more))
                .await
                .map_err(|_| ReadError::Busy)?
                .map_err(|_| ReadError::Busy)?,
        };
        hold.add(permit, needed);
        Ok(())
    }

    /// Grows `hold` to cover `total` bytes (whole KiB) all at once, trying again for up to
    /// `patience`, without a place in the budget's queue: for room made *ahead* of an answer
    /// (a scroll's next page, `proxy::make_room`), before the backend has done any work. A
    /// queued claim ([`BodyBudget::wait_to_cover`]) takes what is free as it waits and every
    /// release goes to it first, so one made ahead would refuse every request body meanwhile
    /// and hold back answers already read in part (each waiting for it, it for them, until
    /// both were refused: a page the backend had moved past was lost). `Busy` when the room
    /// was never free at once, `TooLarge` when `total` could never fit.
    pub async fn wait_for_room(
        &self,
        hold: &mut BudgetHold,
        total: usize,
        patience: std::time::Duration,
    ) -> Result<(), ReadError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = ROOM_RETRY_FIRST;
        loop {
            match self.try_cover(hold, total) {
                Ok(()) => return Ok(()),
                Err(Refused::TooLarge) => return Err(ReadError::TooLarge),
                Err(Refused::Busy) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ReadError::Busy);
            }
            tokio::time::sleep_until((now + pause).min(deadline)).await;
            pause = (pause * 2).min(ROOM_RETRY_LAST);
        }
    }
}

impl BudgetHold {
    /// The bytes the hold covers (whole KiB).
    pub fn bytes(&self) -> usize {
        self.kib as usize * 1024
    }

    /// Returns to the budget what the hold covers beyond `bytes` (whole KiB): the memory it
    /// covered was freed, and what is left is still held.
    pub fn keep(&mut self, bytes: usize) {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if kib >= self.kib {
            return;
        }
        if let Some(permit) = &mut self.permit {
            drop(permit.split((self.kib - kib) as usize));
        }
        if kib == 0 {
            self.permit = None;
        }
        self.kib = kib;
    }

    /// `permit` joined to the hold, which now covers `kib` in all.
    fn add(&mut self, permit: tokio::sync::OwnedSemaphorePermit, kib: u32) {
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        self.kib = kib;
    }
}

/// Reads a whole body, refusing more than `limit` bytes (small bodies outside the budget: the
/// admin API's, esgate's own backend lookups).
pub async fn read_capped<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Err(e) if e.is::<Stalled>() => Err(ReadError::Stalled),
        Err(_) => Err(ReadError::Broken),
    }
}

/// Reads a whole backend answer esgate must rewrite (sealed ids, transformed routes), capped at
/// `limit` and charged to `budget` like request bodies; as the backend has already done the
/// work, it waits up to `patience` for room instead of failing at once.
pub async fn read_answer_budgeted<B>(
    body: B,
    limit: usize,
    budget: &BodyBudget,
    patience: std::time::Duration,
) -> Result<(Bytes, BudgetHold), ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_charged(
        body,
        limit,
        budget,
        Some(patience),
        &mut ReadStart::default(),
        BudgetHold::default(),
        Declared::Trusted,
    )
    .await
}

/// [`read_answer_budgeted`], leaving in `start` the answer's beginning when the read fails
/// (refused for room or size, broken, or cut off by the caller's timeout: `start` is the
/// caller's). `proxy` looks there for the id of a backend context to free. `room` is what the
/// caller already holds for the answer: the read claims only what it needs beyond that.
pub async fn read_answer_keeping_start<B>(
    body: B,
    limit: usize,
    budget: &BodyBudget,
    patience: std::time::Duration,
    start: &mut ReadStart,
    room: BudgetHold,
) -> Result<(Bytes, BudgetHold), ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_charged(
        body,
        limit,
        budget,
        Some(patience),
        start,
        room,
        Declared::Trusted,
    )
    .await
}

/// What a read of a body has taken of it so far: its first bytes, when a read that failed
/// still has them, and whether anything was taken at all (what remains of the body is then
/// not its beginning).
#[derive(Default)]
pub struct ReadStart {
    /// The blocks read (the first holds the body's beginning).
    blocks: Vec<Vec<u8>>,
    /// The first chunk, when its room was refused before it was copied.
    refused_first: Option<Bytes>,
    /// Whether a data chunk was taken from the body.
    taken: bool,
}

impl ReadStart {
    /// The body's first bytes as read, at most `cap` of them (`None` when none are at hand).
    /// The blocks after the first are joined in a copy only when the first is shorter.
    pub fn prefix(&self, cap: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        use std::borrow::Cow;
        if let Some(first) = &self.refused_first {
            return Some(Cow::Borrowed(&first[..first.len().min(cap)]));
        }
        let first = self.blocks.first().filter(|b| !b.is_empty())?;
        if first.len() >= cap || self.blocks.len() == 1 {
            return Some(Cow::Borrowed(&first[..first.len().min(cap)]));
        }
        let mut joined = Vec::with_capacity(cap.min(self.blocks.iter().map(Vec::len).sum()));
        for block in &self.blocks {
            let n = block.len().min(cap - joined.len());
            joined.extend_from_slice(&block[..n]);
            if joined.len() == cap {
                break;
            }
        }
        Some(Cow::Owned(joined))
    }

    /// Whether any of the body was taken: what remains of it is then not its beginning.
    pub fn taken(&self) -> bool {
        self.taken
    }
}

/// Reads a whole body, refusing more than `limit` bytes, charging every chunk to `budget`
/// without waiting. The bytes' share is held until the returned [`BudgetHold`] is dropped.
pub async fn read_budgeted<B>(
    body: B,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, BudgetHold), ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_charged(
        body,
        limit,
        budget,
        None,
        &mut ReadStart::default(),
        BudgetHold::default(),
        Declared::Distrusted,
    )
    .await
}

/// What a body's announced length (`Content-Length`) is taken for.
#[derive(Clone, Copy, PartialEq)]
enum Declared {
    /// A backend answer's, read once the backend has done its work: covered by the budget and
    /// allocated at once, in one block of the exact size.
    Trusted,
    /// A client's: only what arrived is covered and allocated (blocks never reach past the
    /// announced end, so a body sent whole still needs no more than its length). Covering the
    /// announcement let a client pin the budget, and real memory, with headers alone (rel16).
    Distrusted,
}

/// Bodies read whole are copied into blocks of this size.
const READ_BLOCK: usize = 1024 * 1024;

/// A client's announced body keeps at most this many of its first chunks as received before
/// it copies them (`read_charged`), each of at least `EARLY_MIN` bytes.
const EARLY_CHUNKS: usize = 16;
const EARLY_MIN: usize = 32 * 1024;

/// The read loop of all: `patience` `None` = a spent budget fails at once. The blocks live in
/// `start` (an empty one allocates nothing), so a failed read leaves its beginning there.
/// `hold` is what the caller already holds for the body; it grows as the body needs.
async fn read_charged<B>(
    body: B,
    limit: usize,
    budget: &BodyBudget,
    patience: Option<std::time::Duration>,
    start: &mut ReadStart,
    mut hold: BudgetHold,
    trust: Declared,
) -> Result<(Bytes, BudgetHold), ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = body
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge);
    }
    let blocks = &mut start.blocks;
    // What the caller held for the body before the read: never given back here.
    let floor = hold.bytes();
    if let (Some(n), Declared::Trusted) = (declared, trust) {
        budget.cover(&mut hold, n, patience).await?;
        // Announced: one allocation of the exact size, nothing to join.
        blocks.push(Vec::with_capacity(n));
    }
    // The blocks' capacity, which the hold covers (rel21b): a block is opened as large as
    // what the body holds so far, so up to twice the bytes stored in them are allocated, and a
    // flood of slow uploads under a budget counting bytes held about twice the budget in
    // blocks (benches/load/h1_memory.sh, BENCHMARKS.md "Session 21: HTTP/1 memory").
    let mut capacity: usize = blocks.iter().map(Vec::capacity).sum();
    // Copied into blocks of our own as they arrive, joined once at the end into one allocation
    // of the exact size. Growing one buffer by doubling held up to three times a large answer at
    // once, and keeping the received chunks would pin the transport's larger read buffers they
    // are slices of; a body refused for its size never needs the join. Blocks grow with the
    // body up to `READ_BLOCK`, so small bodies stay small allocations.
    let mut total = 0usize;
    // Whether a client's body got its announced length in one block (below).
    let mut whole = false;
    // A client's announced body, until a quarter of it arrived: its first chunks as received
    // (at most `EARLY_CHUNKS` of them, each at least `EARLY_MIN`), so that they are copied
    // once, into that block, rather than into blocks of their own and again into it (perf19:
    // a quarter of a 200 KB search copied twice). Each is a slice of the transport's read
    // buffer and keeps that allocation until the copy: with the default settings at most
    // 128 KiB (HTTP/1: hyper's read of up to 64 KiB, `server::H1_READ_BUF`, beside
    // what it held unread; HTTP/2: frames of up to 16 KiB in its codec's buffer), so a chunk
    // of `EARLY_MIN` or more holds at most four times its bytes, as the block below may; it is
    // covered for the whole buffer (`BodyBudget::with_read_buffer`). A smaller chunk is copied
    // at once, and so is every chunk after it (a slow sender's one-byte chunks would each keep
    // a buffer).
    let mut early: Vec<Bytes> = Vec::new();
    // What the chunks kept early are covered for.
    let mut early_pinned = 0usize;
    let mut body = std::pin::pin!(Limited::new(body, limit));
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ReadError::TooLarge)
            }
            Err(e) if e.is::<Stalled>() => return Err(ReadError::Stalled),
            Err(_) => return Err(ReadError::Broken),
        };
        if let Ok(data) = frame.into_data() {
            start.taken = true;
            total += data.len();
            // More than announced: the transports refuse it (HTTP/1 reads the length, h2
            // resets the stream), so only a broken body gets here; read on, it would fill
            // one-byte blocks past its announced end (review 16e).
            if declared.is_some_and(|n| total > n) {
                return Err(ReadError::Broken);
            }
            cover_or_hand_back(
                budget,
                &mut hold,
                total,
                patience,
                &mut start.refused_first,
                &data,
                total,
            )
            .await?;
            // A client's body that has sent a quarter of what it announced gets its announced
            // length in one block, charged: sent whole, it is then copied once (only what came
            // before is copied twice), where joining the blocks copied all of it again (12% of
            // a 200 KB search). A slow sender still holds at most four times what it sent.
            if let (Some(n), Declared::Distrusted, false) = (declared, trust, whole) {
                if total.saturating_mul(4) >= n {
                    whole = true;
                    budget.cover(&mut hold, n, patience).await?;
                    let mut one = Vec::with_capacity(n);
                    for chunk in early.drain(..) {
                        one.extend_from_slice(&chunk);
                    }
                    for block in blocks.drain(..) {
                        one.extend_from_slice(&block);
                    }
                    blocks.push(one);
                    capacity = n;
                    early_pinned = 0;
                } else if blocks.is_empty() && early.len() < EARLY_CHUNKS && data.len() >= EARLY_MIN
                {
                    // Covered for the read buffer it may keep (rel21b: covered for its bytes
                    // alone, a flood of uploads sent 32 KiB at a time held up to four times
                    // the budget in read buffers).
                    let pinned = early_pinned + data.len().max(budget.chunk_buffer);
                    cover_or_hand_back(
                        budget,
                        &mut hold,
                        pinned,
                        patience,
                        &mut start.refused_first,
                        &data,
                        total,
                    )
                    .await?;
                    early_pinned = pinned;
                    early.push(data);
                    continue;
                }
            }
            // The blocks this chunk opens are covered before they are allocated.
            let free = blocks.last().map_or(0, |b| b.capacity() - b.len());
            let opened = opened_blocks(free, total - data.len(), data.len(), declared);
            if opened > 0 {
                capacity += opened;
                let needed = capacity + early_pinned;
                cover_or_hand_back(
                    budget,
                    &mut hold,
                    needed,
                    patience,
                    &mut start.refused_first,
                    &data,
                    total,
                )
                .await?;
            }
            let mut rest = &data[..];
            while !rest.is_empty() {
                let block = match blocks.last_mut() {
                    Some(b) if b.len() < b.capacity() => b,
                    _ => {
                        let size = block_size(total - rest.len(), rest.len(), declared);
                        blocks.push(Vec::with_capacity(size));
                        blocks.last_mut().expect("just pushed")
                    }
                };
                let n = rest.len().min(block.capacity() - block.len());
                block.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
    // Chunks kept early and never joined: a body that ended short of what it announced
    // (the transports refuse one; a body of another kind may end so).
    if !early.is_empty() {
        let mut joined = Vec::with_capacity(total);
        for chunk in early.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        for block in blocks.drain(..) {
            joined.extend_from_slice(&block);
        }
        blocks.push(joined);
        hold.keep(total.max(floor));
    }
    let bytes = match blocks.len() {
        0 => Bytes::new(),
        1 => Bytes::from(blocks.pop().unwrap_or_default()),
        _ => {
            let mut joined = Vec::with_capacity(total);
            for block in blocks.drain(..) {
                joined.extend_from_slice(&block);
            }
            // The blocks are gone: the hold covers the joined bytes (and what the caller
            // held before), not their capacity.
            hold.keep(total.max(floor));
            Bytes::from(joined)
        }
    };
    Ok((bytes, hold))
}

/// Grows `hold` to cover `n` bytes (`BodyBudget::cover`); refused while `data` is the body's
/// first chunk (`total`, the bytes read, is its length), the chunk is handed back to the
/// caller uncopied (`ReadStart::refused_first`).
async fn cover_or_hand_back(
    budget: &BodyBudget,
    hold: &mut BudgetHold,
    n: usize,
    patience: Option<std::time::Duration>,
    refused_first: &mut Option<Bytes>,
    data: &Bytes,
    total: usize,
) -> Result<(), ReadError> {
    let covered = budget.cover(hold, n, patience).await;
    if covered.is_err() && total == data.len() {
        *refused_first = Some(data.clone());
    }
    covered
}

/// The size of the block a read opens for `rest` more bytes, `stored` being read already: as
/// large as the body so far (blocks double, few of them for a large body), at most
/// `READ_BLOCK`, never past the announced end (the transport refuses a longer body).
fn block_size(stored: usize, rest: usize, declared: Option<usize>) -> usize {
    let size = (stored + rest).clamp(1, READ_BLOCK);
    match declared {
        Some(n) => size.min(n.saturating_sub(stored)).max(1),
        None => size,
    }
}

/// The capacity of the blocks copying `len` more bytes opens, `free` bytes being free in the
/// last block and `stored` read already (`read_charged`'s copy, without the copy).
fn opened_blocks(free: usize, stored: usize, len: usize, declared: Option<usize>) -> usize {
    let mut stored = stored + len.min(free);
    let mut rest = len.saturating_sub(free);
    let mut opened = 0;
    while rest > 0 {
        let size = block_size(stored, rest, declared);
        opened += size;
        let n = rest.min(size);
        stored += n;
        rest -= n;
    }
    opened
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body::Frame;
    use http_body_util::StreamBody;

    /// `proxy::read_body` skips reading a body that has already ended (issue 10): reading one
    /// gives no bytes and holds nothing, whatever the budget has left, so the skip changes no
    /// outcome.
    #[tokio::test]
    async fn an_ended_body_reads_empty_even_without_budget() {
        let budget = BodyBudget::new(1024);
        let (_, spent) = read_budgeted(Full::new(Bytes::from(vec![b'x'; 1024])), 1 << 20, &budget)
            .await
            .unwrap();
        for limit in [0, 1, 1 << 20] {
            let body = Empty::<Bytes>::new();
            assert!(http_body::Body::is_end_stream(&body));
            let (bytes, hold) = read_budgeted(body, limit, &budget).await.unwrap();
            assert!(bytes.is_empty());
            assert!(hold.permit.is_none() && hold.kib == 0);
            let body = Full::new(Bytes::new());
            assert!(http_body::Body::is_end_stream(&body));
            let (bytes, hold) = read_budgeted(body, limit, &budget).await.unwrap();
            assert!(bytes.is_empty());
            assert!(hold.permit.is_none() && hold.kib == 0);
        }
        drop(spent);
    }

    /// Session 11: what a body's parse claims (`es::memory`) grows the request's hold at once:
    /// `Busy` while others hold the budget, `TooLarge` beyond the whole budget, returned with
    /// the hold.
    #[test]
    fn try_cover_grows_a_hold_at_once_or_says_why_not() {
        let budget = BodyBudget::new(8 * 1024);
        let mut mine = BudgetHold::default();
        budget.try_cover(&mut mine, 3 * 1024).unwrap();
        budget.try_cover(&mut mine, 2 * 1024).unwrap(); // covered already
        assert_eq!(mine.kib, 3);
        assert_eq!(
            budget.try_cover(&mut mine, 8 * 1024 + 1),
            Err(Refused::TooLarge)
        );
        let mut other = BudgetHold::default();
        budget.try_cover(&mut other, 5 * 1024).unwrap();
        assert_eq!(budget.try_cover(&mut mine, 4 * 1024), Err(Refused::Busy));
        assert_eq!(mine.kib, 3, "a refused claim leaves the hold as it was");
        drop(other);
        budget.try_cover(&mut mine, 8 * 1024).unwrap();
        assert_eq!(mine.kib, 8);
        drop(mine);
        assert_eq!(budget.kib.available_permits(), 8);
    }

    /// rel19: the first request whose checks are refused room waits in the budget's line for
    /// the room others give back, taking it as it is freed; a second is refused the place (and
    /// so refused at once); request bodies arriving meanwhile take only what is free beyond what
    /// the one waiting lacks; the place is free again once it is dropped.
    #[tokio::test]
    async fn one_request_waits_in_line_for_the_room_others_give_back() {
        let patience = std::time::Duration::from_secs(5);
        let budget = BodyBudget::new(8 * 1024);
        // Three requests hold 2 KiB each; the one in line holds 2 and needs 6 in all.
        let mut others: Vec<BudgetHold> = (0..2)
            .map(|_| {
                let mut h = BudgetHold::default();
                budget.try_cover(&mut h, 2 * 1024).unwrap();
                h
            })
            .collect();
        let mut third = BudgetHold::default();
        budget.try_cover(&mut third, 2 * 1024).unwrap();
        let mut mine = BudgetHold::default();
        budget.try_cover(&mut mine, 2 * 1024).unwrap();
        assert_eq!(budget.try_cover(&mut mine, 6 * 1024), Err(Refused::Busy));
        let place = budget.first_in_line().expect("the line is empty");
        assert!(budget.first_in_line().is_none(), "one place only");
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let r = budget
                    .wait_in_line(&place, &mut mine, 6 * 1024, patience)
                    .await;
                (r, mine.bytes(), place)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        // One gives its 2 KiB back: the one waiting takes it, and still lacks 2.
        drop(others.pop());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        assert_eq!(budget.kib.available_permits(), 0);
        // The third's 2 KiB come back: free, but kept for the one waiting, which takes them,
        // while a request body arriving now is refused (it would take what the other lacks).
        drop(third);
        let small = Full::new(Bytes::from(vec![b'x'; 1024]));
        let read = read_budgeted(small, 1 << 20, &budget).await;
        assert!(
            matches!(read, Err(ReadError::Busy)),
            "{:?}",
            read.map(|r| r.0)
        );
        let (r, held, place) = waiting.await.unwrap();
        assert_eq!((r, held), (Ok(()), 6 * 1024));
        assert!(budget.first_in_line().is_none());
        drop(place);
        assert!(
            budget.first_in_line().is_some(),
            "the place is given up on drop"
        );
        // With the place given up, bodies take what is free as before.
        drop(others);
        let (_, hold) = read_budgeted(Full::new(Bytes::from(vec![b'x'; 1024])), 1 << 20, &budget)
            .await
            .unwrap();
        assert_eq!(hold.kib, 1);
    }

    /// The one waiting in line is refused (`Busy`) when the room does not come within its
    /// patience, keeping what it took in its hold until the caller drops it; `TooLarge` at once
    /// for more than the whole budget; and an answer in flight, queued for room, takes what is
    /// given back before it.
    #[tokio::test]
    async fn waiting_in_line_ends_and_answers_go_first() {
        let budget = BodyBudget::new(8 * 1024);
        let mut pinned = BudgetHold::default();
        budget.try_cover(&mut pinned, 5 * 1024).unwrap();
        let place = budget.first_in_line().unwrap();
        let mut mine = BudgetHold::default();
        let short = std::time::Duration::from_millis(60);
        assert_eq!(
            budget
                .wait_in_line(&place, &mut mine, 9 * 1024, short)
                .await,
            Err(Refused::TooLarge)
        );
        assert_eq!(mine.bytes(), 0);
        assert_eq!(
            budget
                .wait_in_line(&place, &mut mine, 4 * 1024, short)
                .await,
            Err(Refused::Busy)
        );
        assert_eq!(
            (mine.bytes(), budget.kib.available_permits()),
            (3 * 1024, 0)
        );
        drop(mine);
        assert_eq!(budget.kib.available_permits(), 3);
        // An answer queued for 6 KiB holds 3 and waits; the one in line waits for 4.
        let mut answer = BudgetHold::default();
        budget.try_cover(&mut answer, 3 * 1024).unwrap();
        let patience = std::time::Duration::from_secs(5);
        let answering = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .wait_to_cover(&mut answer, 6 * 1024, patience)
                    .await
                    .map(|()| answer)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut mine = BudgetHold::default();
                let r = budget
                    .wait_in_line(&place, &mut mine, 4 * 1024, patience)
                    .await;
                (r, mine)
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        // The pinned 5 KiB come back: the answer takes its 3 first, the one in line the rest
        // and then the answer's 6 once it is sent.
        drop(pinned);
        let answer = answering.await.unwrap().expect("the answer went first");
        assert_eq!(answer.bytes(), 6 * 1024);
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(!waiting.is_finished());
        drop(answer);
        let (r, mine) = waiting.await.unwrap();
        assert_eq!((r, mine.bytes()), (Ok(()), 4 * 1024));
    }

    /// The budget is the cap of what every hold covers, whoever waits: many requests reading,
    /// checking (at once or in line) and answers waiting for room, at random, never hold more
    /// KiB in all than the budget has, and give all of it back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_never_pass_the_budget_whoever_waits() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const KIB: usize = 64;
        let budget = BodyBudget::new(KIB * 1024);
        let held = std::sync::Arc::new(AtomicUsize::new(0));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..48usize {
            let (budget, held, peak) = (budget.clone(), held.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let patience = std::time::Duration::from_millis(200);
                let mut hold = BudgetHold::default();
                let first = (i * 7919 % 24 + 1) * 1024;
                let then = first + (i * 104_729 % 40) * 1024;
                let grown = match i % 3 {
                    0 => budget
                        .wait_to_cover(&mut hold, then, patience)
                        .await
                        .is_ok(),
                    _ if budget.try_cover(&mut hold, first).is_err() => false,
                    1 => budget.try_cover(&mut hold, then).is_ok(),
                    _ => match budget.try_cover(&mut hold, then) {
                        Ok(()) => true,
                        Err(_) => match budget.first_in_line() {
                            Some(place) => budget
                                .wait_in_line(&place, &mut hold, then, patience)
                                .await
                                .is_ok(),
                            None => false,
                        },
                    },
                };
                let now = held.fetch_add(hold.kib as usize, Ordering::SeqCst) + hold.kib as usize;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(i as u64 % 5)).await;
                held.fetch_sub(hold.kib as usize, Ordering::SeqCst);
                grown
            }));
        }
        let mut served = 0;
        for t in tasks {
            served += usize::from(t.await.unwrap());
        }
        assert!(served > 0);
        assert!(peak.load(Ordering::SeqCst) <= KIB, "{peak:?}");
        assert_eq!(budget.kib.available_permits(), KIB);
        assert!(budget.first_in_line().is_some());
    }

    /// Session 12: a hold shrinks to what is still in memory (a sealed copy once the answer
    /// it was made from is freed), and an answer built in memory keeps its share held until
    /// its last slice is taken (sent), or until it is dropped unsent.
    #[tokio::test]
    async fn a_held_answer_keeps_its_share_until_it_is_sent() {
        let budget = BodyBudget::new(64 * 1024);
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 40 * 1024).unwrap();
        hold.keep(50 * 1024); // never grows
        assert_eq!((hold.kib, budget.kib.available_permits()), (40, 24));
        hold.keep(20 * 1024 - 5);
        assert_eq!((hold.kib, budget.kib.available_permits()), (20, 44));
        let answer = Bytes::from(vec![b'x'; 150 * 1024]);
        let mut body = held(answer.clone(), hold);
        let mut sent = Vec::new();
        while !http_body::Body::is_end_stream(&body) {
            assert_eq!(budget.kib.available_permits(), 44, "held while unsent");
            let frame = body.frame().await.unwrap().unwrap();
            sent.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(sent, answer);
        drop(body);
        assert_eq!(budget.kib.available_permits(), 64);
        // Dropped unsent (the client went away): returned too; an empty hold is a plain body.
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 10 * 1024).unwrap();
        let body = held(Bytes::from_static(b"{}"), hold);
        assert_eq!(budget.kib.available_permits(), 54);
        drop(body);
        assert_eq!(budget.kib.available_permits(), 64);
        let mut hold = BudgetHold::default();
        budget.try_cover(&mut hold, 1024).unwrap();
        hold.keep(0);
        assert!(hold.permit.is_none());
        assert_eq!(budget.kib.available_permits(), 64);
    }

    #[tokio::test]
    async fn the_budget_refuses_bodies_beyond_it_and_is_returned_on_drop() {
        let budget = BodyBudget::new(8 * 1024);
        let body = || Full::new(Bytes::from(vec![b'x'; 5 * 1024]));
        let (bytes, first) = read_budgeted(body(), 1 << 20, &budget).await.unwrap();
        assert_eq!(bytes.len(), 5 * 1024);
        assert!(matches!(
            read_budgeted(body(), 1 << 20, &budget).await,
            Err(ReadError::Busy)
        ));
        drop(first);
        assert!(read_budgeted(body(), 1 << 20, &budget).await.is_ok());
        assert!(matches!(
            read_budgeted(body(), 1024, &budget).await,
            Err(ReadError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn answers_wait_for_room_and_never_exceed_the_whole_budget() {
        let budget = BodyBudget::new(8 * 1024);
        let patience = std::time::Duration::from_secs(5);
        let body = |n: usize| Full::new(Bytes::from(vec![b'x'; n]));
        let (_, first) = read_budgeted(body(6 * 1024), 1 << 20, &budget)
            .await
            .unwrap();
        // Does not fit now: waits until the first is released.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                read_answer_budgeted(body(4 * 1024), 1 << 20, &budget, patience)
                    .await
                    .map(|(b, _)| b.len())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), 4 * 1024);
        // Larger than the whole budget: refused at once, never waited for.
        assert!(matches!(
            read_answer_budgeted(body(9 * 1024), 1 << 20, &budget, patience).await,
            Err(ReadError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn the_budget_counts_bytes_not_chunks() {
        let budget = BodyBudget::new(4 * 1024);
        // 3000 one-byte chunks: 3 KiB of the 4, not 3000 KiB.
        let chunks = (0..3000).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(b"x")))
        });
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let (bytes, hold) = read_budgeted(body, 1 << 20, &budget).await.unwrap();
        assert_eq!(bytes.len(), 3000);
        assert_eq!(hold.kib, 3);
    }

    #[tokio::test]
    async fn bodies_across_many_blocks_come_back_whole_and_in_order() {
        let budget = BodyBudget::new(64 * 1024 * 1024);
        let chunks: Vec<Bytes> = (0..40u8)
            .map(|i| Bytes::from(vec![i; 77 * 1024 + usize::from(i)]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(c)));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let (bytes, _hold) = read_budgeted(body, 1 << 30, &budget).await.unwrap();
        assert_eq!(bytes.len(), expected.len());
        assert!(bytes[..] == expected[..]);
        // Announced and over the limit: refused before a byte is read.
        let big = Full::new(Bytes::from(vec![b'x'; 4096]));
        assert!(matches!(
            read_budgeted(big, 1024, &budget).await,
            Err(ReadError::TooLarge)
        ));
    }

    /// A body announcing `announced` bytes that yields `chunks`, then ends if `ends`, or else
    /// sends nothing more (pending forever).
    struct Announced {
        chunks: std::collections::VecDeque<Bytes>,
        announced: u64,
        ends: bool,
    }

    impl http_body::Body for Announced {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            match self.chunks.pop_front() {
                Some(c) => std::task::Poll::Ready(Some(Ok(Frame::data(c)))),
                None if self.ends => std::task::Poll::Ready(None),
                None => std::task::Poll::Pending,
            }
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.announced)
        }
    }

    /// rel16: a client's body was charged to the budget (and given its memory) for its whole
    /// announced `Content-Length` before any of it arrived, so slow senders holding one valid
    /// token pinned the budget for nothing (about 1,000 connections each announcing 1 MB and
    /// sending one byte: 1.1 GB resident, every other body refused with a 429 for
    /// `header_timeout`). A client's body now holds what arrived; a backend answer (trusted, read
    /// once the backend has done the work) is still covered and allocated at once.
    #[tokio::test]
    async fn a_client_body_holds_what_arrived_not_what_it_announced() {
        let budget = BodyBudget::new(1 << 20);
        let trickle = || Announced {
            chunks: [Bytes::from_static(b"{")].into(),
            announced: 1 << 20,
            ends: false,
        };
        let reading = {
            let budget = budget.clone();
            tokio::spawn(async move { read_budgeted(trickle(), 2 << 20, &budget).await.is_ok() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reading.is_finished());
        assert_eq!(
            budget.kib.available_permits(),
            1023,
            "one KiB held for one byte"
        );
        // Another client's body is served beside it.
        let (bytes, hold) = read_budgeted(
            Full::new(Bytes::from(vec![b'x'; 512 << 10])),
            1 << 20,
            &budget,
        )
        .await
        .unwrap();
        assert_eq!((bytes.len(), hold.kib), (512 << 10, 512));
        drop((bytes, hold));
        reading.abort();
        let _ = reading.await;
        assert_eq!(budget.kib.available_permits(), 1024);

        // Once a quarter of it arrived, a client's body holds its announced length (one
        // allocation of its size, no copy of the whole to join it): at most four times what
        // the client sent; below a quarter, what it sent.
        for (sent, held_kib) in [(255usize << 10, 255), (256 << 10, 1024)] {
            let part = move || Announced {
                chunks: [Bytes::from(vec![b'x'; sent])].into(),
                announced: 1 << 20,
                ends: false,
            };
            let reading = {
                let budget = budget.clone();
                tokio::spawn(async move { read_budgeted(part(), 2 << 20, &budget).await.is_ok() })
            };
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(
                budget.kib.available_permits(),
                1024 - held_kib,
                "{sent} sent"
            );
            reading.abort();
            let _ = reading.await;
            assert_eq!(budget.kib.available_permits(), 1024);
        }

        // An answer announcing 1 MiB is covered at once.
        let answer = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let patience = std::time::Duration::from_secs(5);
                read_answer_budgeted(trickle(), 2 << 20, &budget, patience)
                    .await
                    .is_ok()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(budget.kib.available_permits(), 0);
        answer.abort();
        let _ = answer.await;
        assert_eq!(budget.kib.available_permits(), 1024);
    }

    /// Review 16e: a body longer than it announced (never from the transports, which refuse
    /// it) is broken, not read on into one-byte blocks past its announced end.
    #[tokio::test]
    async fn a_body_longer_than_it_announced_is_broken() {
        let budget = BodyBudget::new(1 << 20);
        for (chunks, announced) in [(vec![10usize, 10], 12u64), (vec![1], 0), (vec![4, 4, 1], 8)] {
            let body = Announced {
                chunks: chunks.iter().map(|&n| Bytes::from(vec![b'x'; n])).collect(),
                announced,
                ends: true,
            };
            let read = read_budgeted(body, 1 << 20, &budget).await;
            assert!(
                matches!(read, Err(ReadError::Broken)),
                "{chunks:?} announced {announced}: {:?}",
                read.map(|(b, _)| b.len())
            );
        }
        assert_eq!(budget.kib.available_permits(), 1024);
    }

    /// A client's announced body read in chunks of every size comes back whole and in order,
    /// and holds its length (whole KiB) of the budget, however its chunks fell.
    #[tokio::test]
    async fn announced_bodies_in_uneven_chunks_come_back_whole() {
        let budget = BodyBudget::new(64 << 20);
        for (n, step) in [
            (1usize, 1),
            (2048, 2048),
            (2048, 100),
            (1000, 300),
            (1000, 1),
            (100_000, 16 << 10),
            (100_000, 1000),
            (100_000, 4096),
            (400_000, 5000),
            (100_000, 100_000),
            (3 << 20, 7777),
        ] {
            let expected: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let body = Announced {
                chunks: expected.chunks(step).map(Bytes::copy_from_slice).collect(),
                announced: n as u64,
                ends: true,
            };
            let (bytes, hold) = read_budgeted(body, 4 << 20, &budget).await.unwrap();
            assert!(bytes[..] == expected[..], "{n} in chunks of {step}");
            assert_eq!(hold.kib as usize, n.div_ceil(1024));
        }
    }

    /// perf19: a client's announced body keeps its first chunks as received until a quarter
    /// of it arrived, then copies them once into the block of its announced length (they had
    /// been copied into blocks of their own, then again into that block). A body that ends
    /// short of what it announced still comes back whole.
    #[tokio::test]
    async fn a_client_body_copies_its_first_quarter_once() {
        struct Counted(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl AsRef<[u8]> for Counted {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl Drop for Counted {
            fn drop(&mut self) {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let budget = BodyBudget::new(1 << 20);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let chunk = |b: u8, n: usize| Bytes::from_owner(Counted(vec![b; n], dropped.clone()));
        let k = EARLY_MIN;
        // Two of ten announced chunks, then nothing: both still held, not copied.
        let body = Announced {
            chunks: [chunk(b'a', k), chunk(b'b', k)].into(),
            announced: 10 * k as u64,
            ends: false,
        };
        let reading = {
            let budget = budget.clone();
            tokio::spawn(async move { read_budgeted(body, 1 << 20, &budget).await.is_ok() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Each is covered for the read buffer it may be a slice of (rel21b), not its bytes.
        assert_eq!(
            budget.kib.available_permits(),
            1024 - 2 * budget.chunk_buffer / 1024,
            "charged for the buffers kept"
        );
        reading.abort();
        let _ = reading.await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The third reaches the quarter: all three copied into the one block, then let go.
        let body = Announced {
            chunks: [chunk(b'a', k), chunk(b'b', k), chunk(b'c', k)].into(),
            announced: 10 * k as u64,
            ends: false,
        };
        let reading = {
            let budget = budget.clone();
            tokio::spawn(async move { read_budgeted(body, 1 << 20, &budget).await.is_ok() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 5);
        reading.abort();
        let _ = reading.await;
        // A chunk smaller than `EARLY_MIN` is copied at once, and so is every chunk after it.
        let body = Announced {
            chunks: [chunk(b'a', k - 1), chunk(b'b', k)].into(),
            announced: 10 * k as u64,
            ends: false,
        };
        let reading = {
            let budget = budget.clone();
            tokio::spawn(async move { read_budgeted(body, 1 << 20, &budget).await.is_ok() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 7);
        reading.abort();
        let _ = reading.await;
        // Ended short, with chunks held early and blocks after them: whole and in order.
        let chunks: Vec<Bytes> = (0..20u8)
            .map(|i| Bytes::from(vec![i; k + usize::from(i)]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let body = Announced {
            chunks: chunks.into(),
            announced: 100 * k as u64,
            ends: true,
        };
        // (Sixteen chunks kept early are covered for 2 MiB of read buffers.)
        let budget = BodyBudget::new(4 << 20);
        let (bytes, _) = read_budgeted(body, 100 * k, &budget).await.unwrap();
        assert!(bytes[..] == expected[..]);
    }

    /// Session 13: a read of an answer that fails leaves its beginning where `proxy` looks for
    /// the id of a backend context to free: the first chunk refused room, the blocks read
    /// before a timeout cut the read, and nothing when nothing was taken.
    #[tokio::test]
    async fn a_failed_answer_read_leaves_its_beginning() {
        let patience = std::time::Duration::from_millis(50);
        let chunk = |b: u8, n: usize| {
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b; n])))
        };
        // Unannounced, the first chunk larger than the whole budget: refused, kept.
        let budget = BodyBudget::new(1024);
        let frames = futures_util::stream::iter([chunk(b'a', 3000), chunk(b'b', 10)]);
        let mut start = ReadStart::default();
        let read = read_answer_keeping_start(
            StreamBody::new(frames),
            1 << 20,
            &budget,
            patience,
            &mut start,
            BudgetHold::default(),
        )
        .await;
        assert!(matches!(read, Err(ReadError::TooLarge)));
        assert!(start.taken());
        assert_eq!(start.prefix(1 << 20).as_deref(), Some(&[b'a'; 3000][..]));
        assert_eq!(start.prefix(5).as_deref(), Some(&b"aaaaa"[..]));
        // A later chunk refused: the first block, from the answer's first byte.
        let budget = BodyBudget::new(4096);
        let frames =
            futures_util::stream::iter([chunk(b'a', 100), chunk(b'b', 100), chunk(b'c', 8000)]);
        let mut start = ReadStart::default();
        let read = read_answer_keeping_start(
            StreamBody::new(frames),
            1 << 20,
            &budget,
            patience,
            &mut start,
            BudgetHold::default(),
        )
        .await;
        assert!(matches!(read, Err(ReadError::TooLarge)));
        let want = [[b'a'; 100], [b'b'; 100]].concat();
        assert_eq!(start.prefix(1 << 20).as_deref(), Some(&want[..]));
        assert_eq!(start.prefix(150).as_deref(), Some(&want[..150]));
        assert_eq!(start.prefix(50).as_deref(), Some(&want[..50]));
        // Cut off by the caller's timeout after its first chunk: the chunk is still there.
        let frames =
            futures_util::stream::iter([chunk(b'a', 10)]).chain(futures_util::stream::pending());
        let mut start = ReadStart::default();
        let read = read_answer_keeping_start(
            StreamBody::new(frames),
            1 << 20,
            &budget,
            patience,
            &mut start,
            BudgetHold::default(),
        );
        assert!(tokio::time::timeout(patience, read).await.is_err());
        assert!(start.taken());
        assert_eq!(start.prefix(1 << 20).as_deref(), Some(&[b'a'; 10][..]));
        // Announced and larger than the budget: refused before a byte is taken.
        let mut big = Full::new(Bytes::from(vec![b'x'; 8192]));
        let mut start = ReadStart::default();
        let read = read_answer_keeping_start(
            &mut big,
            1 << 20,
            &budget,
            patience,
            &mut start,
            BudgetHold::default(),
        )
        .await;
        assert!(matches!(read, Err(ReadError::TooLarge)));
        assert!(!start.taken() && start.prefix(1 << 20).is_none());
        let rest = big.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), 8192);
    }

    /// Review 16d: room made ahead of an answer waits without a place in the budget's queue.
    /// Queued, it took what was free as it waited and every release went to it: a request
    /// body was refused meanwhile, and an answer already read in part, needing a little more,
    /// waited behind it while it waited for the answer's room (both refused after esgate's
    /// patience: the scroll page was lost).
    #[tokio::test]
    async fn room_made_ahead_never_holds_back_bodies_or_answers_in_flight() {
        let patience = std::time::Duration::from_secs(5);
        let budget = BodyBudget::new(8 * 1024);
        // An answer in flight holds 4 KiB of its room; 4 KiB are free.
        let mut answer = BudgetHold::default();
        budget.try_cover(&mut answer, 4 * 1024).unwrap();
        // The next scroll page's room (6 KiB) does not fit now: it waits.
        let ahead = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut room = BudgetHold::default();
                budget
                    .wait_for_room(&mut room, 6 * 1024, patience)
                    .await
                    .map(|()| room.bytes())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!ahead.is_finished());
        // A request body meanwhile takes what is free, at once.
        let mut body = BudgetHold::default();
        assert_eq!(budget.try_cover(&mut body, 1024), Ok(()));
        // The answer in flight grows by what it needs beyond its room, at once.
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            budget.wait_to_cover(&mut answer, 6 * 1024, patience),
        )
        .await
        .expect("the answer in flight is not held back")
        .unwrap();
        assert_eq!(budget.kib.available_permits(), 1);
        // Once they are done, the room is made.
        drop((body, answer));
        assert_eq!(ahead.await.unwrap().unwrap(), 6 * 1024);
        assert_eq!(budget.kib.available_permits(), 8);
        // Never free at once: Busy after the patience; more than the whole budget: TooLarge.
        let mut others = BudgetHold::default();
        budget.try_cover(&mut others, 4 * 1024).unwrap();
        let mut room = BudgetHold::default();
        let short = std::time::Duration::from_millis(60);
        assert!(matches!(
            budget.wait_for_room(&mut room, 6 * 1024, short).await,
            Err(ReadError::Busy)
        ));
        assert!(matches!(
            budget.wait_for_room(&mut room, 9 * 1024, short).await,
            Err(ReadError::TooLarge)
        ));
        assert_eq!((room.bytes(), budget.kib.available_permits()), (0, 4));
    }

    /// Room the caller made before the answer was asked for (a scroll's next page) is what the
    /// read uses: it claims only what the answer needs beyond it, so a budget others have
    /// filled meanwhile does not refuse it.
    #[tokio::test]
    async fn an_answer_read_into_room_made_before_claims_nothing_more() {
        let patience = std::time::Duration::from_millis(50);
        let budget = BodyBudget::new(4 * 1024);
        let mut room = BudgetHold::default();
        budget
            .wait_to_cover(&mut room, 3 * 1024, patience)
            .await
            .unwrap();
        let mut others = BudgetHold::default();
        budget
            .wait_to_cover(&mut others, 1024, patience)
            .await
            .unwrap();
        let body = || {
            StreamBody::new(futures_util::stream::iter([Ok::<
                _,
                std::convert::Infallible,
            >(Frame::data(
                Bytes::from(vec![b'a'; 3000]),
            ))]))
        };
        let (bytes, hold) = read_answer_keeping_start(
            body(),
            1 << 20,
            &budget,
            patience,
            &mut ReadStart::default(),
            room,
        )
        .await
        .unwrap();
        assert_eq!((bytes.len(), hold.bytes()), (3000, 3 * 1024));
        // Without that room, the same read is refused.
        drop(hold);
        let mut filler = BudgetHold::default();
        budget
            .wait_to_cover(&mut filler, 3 * 1024, patience)
            .await
            .unwrap();
        let read = read_answer_keeping_start(
            body(),
            1 << 20,
            &budget,
            patience,
            &mut ReadStart::default(),
            BudgetHold::default(),
        )
        .await;
        assert!(matches!(read, Err(ReadError::Busy)));
    }
}
