//! The audit log: one JSON line per data request, per admin change and per failed admin
//! authentication, to stdout or a file.
//!
//! Lines are written by a thread of their own every 10 ms in batches; it sleeps while nothing
//! is pending, and the next line wakes it once, after the batch lock is let go (on a data
//! worker by a task queued behind the request's, `WakeWriter`, so after its answer's write).
//! While lines keep coming (a batch of more than one) it stays awake one period after each
//! batch, so they wake no one.
//! A request record is written field by field into one byte buffer, byte for byte what
//! serde_json writes (strings that may need escapes go through serde_json; the ones esgate
//! makes itself, such as the request id, address, method, action and decision, are copied
//! without the escape scan, which debug builds assert); the time is formatted once a second
//! and thread. Request paths only append; admin changes wait for their line.
//!
//! When the output cannot be written: fail-open by default (a run of failures logged at its
//! start and end, lost records counted, `esgate_audit_lost`; a batch the disk took part of is
//! cut off the file), or with `audit.on_failure = "closed"` fail-closed: [`Audit::refusing`],
//! one atomic the writer sets after each write, read by `proxy::pipeline` after policy and by
//! the Kibana front before anything is forwarded (503), and by the admin API before a change;
//! the writer probes the output every second while failing, and the state survives a reload.
//! The writers of one file (a reload's old output and its new one) take turns.
//!
//! Secret-like text is redacted wherever it appears in a line: `esg_` then digits and
//! underscores, any character percent-encoded any number of times.
//!
//! Invariant: never a secret, a token hash, an `Authorization` value or a request body.
//! The schema is versioned (`"v": 1`); add fields, never rename them.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{AuditOnFailure, AuditOutput};
use crate::store::model::Token;

/// Bytes of lines waiting for the writer. When the output stalls (a full pipe, a slow disk)
/// and this much is waiting, data-request records are dropped and counted rather than
/// blocking the runtime's worker threads, which would freeze every request.
const PENDING_CAP: usize = 16 * 1024 * 1024;

/// How long the writer lets lines gather before it writes them. Request paths wake the writer
/// only when it sleeps, idle (the first line after a quiet spell; a futex wake-up per request
/// cost more than the line itself); it wakes on this period, or at once when an admin change
/// waits for its line.
const BATCH_PERIOD: Duration = Duration::from_millis(10);

/// With `audit.on_failure = "closed"`, how often the writer tries the output while it cannot be
/// written and nothing is pending (refused requests write lines too, and those try it as well):
/// an idle gateway resumes within this of the disk having room again, no request needed.
const PROBE_PERIOD: Duration = Duration::from_secs(1);

/// Why a data request or an admin change is refused while the audit log cannot be written and
/// `audit.on_failure = "closed"` (503).
pub const UNWRITABLE: &str =
    "the audit log cannot be written (audit.on_failure = \"closed\"); nothing was done, retry later";

/// The audit log. Request paths only serialise a line and append it to a shared batch; one
/// writer thread owns the output and writes the batch every `BATCH_PERIOD`, so no request
/// waits on disk or stdout. Admin changes wait until their line is flushed (`sync`).
pub struct Audit {
    shared: Option<Arc<Shared>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: std::sync::atomic::AtomicU64,
    /// `PENDING_CAP`, smaller in tests.
    cap: usize,
    /// `audit.on_failure = "closed"`: while the output cannot be written, data requests and
    /// admin changes are refused (`refusing`).
    closed: bool,
}

/// What the request paths and the writer thread share.
struct Shared {
    batch: Mutex<Batch>,
    /// Records (request and admin) lost because the output failed: written by the writer
    /// thread, exported as `esgate_audit_lost`.
    lost: std::sync::atomic::AtomicU64,
    /// The output cannot be written: the writer's last write (a batch or a probe) failed and
    /// no later one succeeded. Set and cleared by the writer thread after each write.
    failing: std::sync::atomic::AtomicBool,
    /// Records lost since the last write that succeeded (the next `audit_gap` record's).
    missing: std::sync::atomic::AtomicU64,
    /// `audit.on_failure = "closed"`: the output stalls (a full pipe, a hung disk) and request
    /// records were dropped for want of room in the batch; cleared when the writer has written
    /// a batch since. Refuses like `failing`: a stall loses records as a failure does.
    stalled: std::sync::atomic::AtomicBool,
    /// `audit.on_failure = "closed"`: the writer probes the output while `failing`.
    probes: bool,
    /// Wakes the writer before its period ends (a `sync`, or closing).
    wake: Condvar,
    /// Tells `sync` callers that a batch went out.
    written: Condvar,
}

#[derive(Default)]
struct Batch {
    pending: Vec<u8>,
    /// Batches taken by the writer so far; a batch holding a line is out once `flushed`
    /// reaches the number the batch had when the line was added, plus one.
    taken: u64,
    /// Batches written and flushed so far.
    flushed: u64,
    /// Someone waits in `sync`: write now rather than at the end of the period.
    urgent: bool,
    closed: bool,
    /// The writer found nothing pending and sleeps until a line arrives: the next `append`
    /// wakes it (once), so an idle gateway's writer does not wake every period.
    asleep: bool,
    /// Times the writer woke (idle behaviour is tested on it).
    rounds: u64,
    /// Times a line found the writer asleep and woke it (tested on it).
    wakes: u64,
    /// Callers waiting in `sync` for a batch to go out: the writer tells them (`written`)
    /// only when there are some (perf27b: std's `notify_all` is a futex call even when
    /// nobody waits, one a batch).
    syncing: u32,
    /// Times the writer told `sync` callers a batch went out (tested on it).
    notices: u64,
}

/// A token's id or name in a request's record: read from the store's record of the token,
/// which the snapshot shares (issue 10: the two copies and their frees were a request's), or a
/// text of its own.
#[derive(Clone)]
pub enum TokenText {
    Id(Arc<Token>),
    Name(Arc<Token>),
    Own(String),
}

impl std::ops::Deref for TokenText {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            TokenText::Id(t) => &t.id,
            TokenText::Name(t) => &t.name,
            TokenText::Own(s) => s,
        }
    }
}

/// The text alone: never the token's record (its secret's digest) in a debug print.
impl std::fmt::Debug for TokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl From<&str> for TokenText {
    fn from(s: &str) -> TokenText {
        TokenText::Own(s.to_owned())
    }
}

impl From<String> for TokenText {
    fn from(s: String) -> TokenText {
        TokenText::Own(s)
    }
}

/// One data request, as the audit log records it.
#[derive(Debug, Default, Clone)]
pub struct DataEvent {
    pub request_id: String,
    pub token_id: Option<TokenText>,
    pub token_name: Option<TokenText>,
    pub client: String,
    /// The request's method: a standard one's name is not copied ([`method_name`]).
    pub method: std::borrow::Cow<'static, str>,
    pub path: String,
    pub action: Option<&'static str>,
    pub indices: Vec<String>,
    pub status: u16,
    pub decision: &'static str,
    pub reason: Option<String>,
    pub bytes: u64,
    pub duration_ms: f64,
    /// The share link the request came through (the Kibana front, or its link credential on
    /// the data listener), issue #16.
    pub link_id: Option<String>,
    /// The request was refused before anything was done for it (nothing forwarded, nothing
    /// answered but the refusal): its record may only use the half of the batch kept for
    /// refusals (`Room::Refused`). Not written.
    pub refused: bool,
}

/// How much of the batch a line may use when the output stalls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Admin changes: always kept (rare, and waited for).
    Must,
    /// A request that was served (forwarded or answered): the whole batch; dropped past it,
    /// which with `audit.on_failure = "closed"` refuses (`stalled`).
    Served,
    /// A request refused before anything was done, or a failed admin authentication: half the
    /// batch, and dropped past it without refusing (attack20d: any client, with no
    /// credential at all, can make refusals as fast as the listener takes them; had their
    /// records filled the batch, served records found no room and a closed gateway refused
    /// every tenant, a denial of service the operator did not choose). Losing a refusal's
    /// record loses nothing done; it is counted (`esgate_audit_dropped_total`).
    Refused,
}

/// The most characters of a method's name recorded. HTTP/1.1 sets no length on a method, so an
/// extension method can be as long as the request head (hundreds of KB): like the path, it is
/// cut, so a client cannot make each of its lines huge (review 16c).
pub const MAX_METHOD_CHARS: usize = 64;

/// A method's name for the record: the standard ones' without an allocation (issue 10), an
/// extension method's cut to [`MAX_METHOD_CHARS`].
pub fn method_name(method: &http::Method) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    match method.as_str() {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        "PUT" => Cow::Borrowed("PUT"),
        "DELETE" => Cow::Borrowed("DELETE"),
        "HEAD" => Cow::Borrowed("HEAD"),
        "OPTIONS" => Cow::Borrowed("OPTIONS"),
        "PATCH" => Cow::Borrowed("PATCH"),
        other => Cow::Owned(other.chars().take(MAX_METHOD_CHARS).collect()),
    }
}

/// A data request's line, written field by field into `out` (the same JSON serde_json wrote
/// for the former `#[derive(Serialize)]` record: compact, these keys in this order, `null` for
/// a missing value, `link_id` only when set). Strings that need escaping go through
/// serde_json itself, so the escaping is serde_json's. The record's layout is fixed, so each
/// key is copied with the quotes and comma around it (and a string esgate made itself with
/// its quotes: one copy of `","client":"` rather than three), nothing escaped or looked up.
///
/// The line is bytes (perf24c): the digits and the constant parts are copied as they are, with
/// no UTF-8 step (a `String` pushed the integers' digits one `char` at a time); it is UTF-8 all
/// the same, the strings copied in being `&str`.
///
/// The strings esgate makes itself are written without the escape scan (perf21b: 6 of a
/// small GET's 11 scans): the request id (hex digits), the client address (an address's text),
/// a standard method's name, the action and the decision (esgate's own constants) and the time
/// (RFC 3339). None can hold a quote, a backslash or a control character; debug builds check it
/// (`plain`), and `tests::esgates_own_strings_need_no_escape` holds each maker to it.
fn write_request_record(out: &mut Vec<u8>, e: &DataEvent, at: &str) {
    out.extend_from_slice(b"{\"type\":\"request\",\"request_id\":\"");
    plain(out, &e.request_id);
    out.extend_from_slice(b"\",\"token_id\":");
    json_opt_str(out, e.token_id.as_deref());
    out.extend_from_slice(b",\"token_name\":");
    json_opt_str(out, e.token_name.as_deref());
    out.extend_from_slice(b",\"client\":\"");
    plain(out, &e.client);
    out.extend_from_slice(b"\",\"method\":");
    match &e.method {
        std::borrow::Cow::Borrowed(standard) => json_plain(out, standard),
        // An extension method: an HTTP token, scanned all the same.
        std::borrow::Cow::Owned(other) => json_str(out, other),
    }
    out.extend_from_slice(b",\"path\":");
    json_str(out, &e.path);
    out.extend_from_slice(b",\"action\":");
    match e.action {
        Some(action) => json_plain(out, action),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"indices\":[");
    for (i, index) in e.indices.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, index);
    }
    out.extend_from_slice(b"],\"status\":");
    json_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"decision\":\"");
    plain(out, e.decision);
    out.extend_from_slice(b"\",\"reason\":");
    json_opt_str(out, e.reason.as_deref());
    if let Some(link) = e.link_id.as_deref() {
        out.extend_from_slice(b",\"link_id\":");
        json_str(out, link);
    }
    out.extend_from_slice(b",\"bytes\":");
    json_u64(out, e.bytes);
    out.extend_from_slice(b",\"duration_ms\":");
    json_millis(out, e.duration_ms);
    out.extend_from_slice(b",\"v\":1,\"at\":\"");
    plain(out, at);
    out.extend_from_slice(b"\"}");
}

/// A JSON string: copied as is when no byte needs escaping (the common case), else escaped by
/// serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if crate::es::request::tree::needs_escape(s.as_bytes()) {
        match serde_json::to_string(s) {
            Ok(text) => out.extend_from_slice(text.as_bytes()),
            Err(_) => out.extend_from_slice(b"null"),
        }
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// A JSON string esgate made itself, which needs no escape (see [`write_request_record`]):
/// copied between quotes without the scan.
fn json_plain(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    plain(out, s);
    out.push(b'"');
}

/// The text of a string esgate made itself, which needs no escape, without its quotes.
#[inline]
fn plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(
        !crate::es::request::tree::needs_escape(s.as_bytes()),
        "an audit string esgate makes needs escaping: {s:?}"
    );
    out.extend_from_slice(s.as_bytes());
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A decimal integer, without `fmt`: the digits made from the right, then copied at once.
fn json_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The duration in milliseconds, rounded to the microsecond, as serde_json writes the `f64`
/// (shortest round-trip text; `null` when not finite). Below a billion milliseconds the rounded
/// value `k / 1000` is written as the decimal `k / 1000` without trailing zeros (at least one
/// fraction digit): its double is the nearest to that decimal, and no shorter decimal is within
/// half a unit of its last place (the unit is under 1e-6 there, a shorter decimal at least
/// 0.0005 away), so that decimal is the shortest round-trip text. Written without `fmt` or a
/// float formatter (issue 10); larger or odd values go through serde_json.
fn json_millis(out: &mut Vec<u8>, millis: f64) {
    let micros = (millis * 1000.0).round();
    if (0.0..1e12).contains(&micros) && micros.is_sign_positive() {
        let micros = micros as u64;
        json_u64(out, micros / 1000);
        let mut fraction = micros % 1000;
        let mut digits = 3;
        while digits > 1 && fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        let text = [
            b'.',
            b'0' + (fraction / 100 % 10) as u8,
            b'0' + (fraction / 10 % 10) as u8,
            b'0' + (fraction % 10) as u8,
        ];
        // The point, then the last `digits` of the three.
        out.push(text[0]);
        out.extend_from_slice(&text[4 - digits..]);
        return;
    }
    match serde_json::to_string(&(micros / 1000.0)) {
        Ok(text) => out.extend_from_slice(text.as_bytes()),
        Err(_) => out.extend_from_slice(b"null"),
    }
}

/// The largest line buffer a thread keeps for its next line.
const LINE_KEPT: usize = 4096;

thread_local! {
    /// The buffer a thread writes its request lines in (`Audit::data`).
    static LINE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };

    /// The last second formatted as RFC 3339 on this thread: request lines within one second
    /// share its text.
    static AT: std::cell::RefCell<(crate::store::model::UnixTime, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

/// Calls `f` with the RFC 3339 text of `now`, formatted at most once per second and thread.
fn with_rfc3339<R>(now: crate::store::model::UnixTime, f: impl FnOnce(&str) -> R) -> R {
    AT.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, crate::time::rfc3339(now));
        }
        f(&cached.1)
    })
}

impl Audit {
    pub fn open(output: &AuditOutput, on_failure: AuditOnFailure) -> std::io::Result<Audit> {
        let sink: Box<dyn Output> = match output {
            AuditOutput::Off => {
                return Ok(Audit {
                    shared: None,
                    writer: Mutex::new(None),
                    dropped: Default::default(),
                    cap: PENDING_CAP,
                    closed: false,
                })
            }
            AuditOutput::Stdout => Box::new(std::io::stdout()) as Box<dyn Output>,
            AuditOutput::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                let writers =
                    file_writers(&std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()));
                Box::new(AuditFile { file, writers })
            }
        };
        Ok(Audit::with_cap(sink, PENDING_CAP, on_failure))
    }

    /// An audit log writing to `sink` from its own thread.
    #[cfg(test)]
    fn to_writer(sink: Box<dyn Output>) -> Audit {
        Audit::with_cap(sink, PENDING_CAP, AuditOnFailure::Open)
    }

    fn with_cap(sink: Box<dyn Output>, cap: usize, on_failure: AuditOnFailure) -> Audit {
        let closed = on_failure == AuditOnFailure::Closed;
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch::default()),
            lost: Default::default(),
            failing: Default::default(),
            missing: Default::default(),
            stalled: Default::default(),
            probes: closed,
            wake: Condvar::new(),
            written: Condvar::new(),
        });
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("esgate-audit".into())
            .spawn(move || write_batches(&for_writer, sink))
            .ok();
        Audit {
            shared: writer.as_ref().map(|_| shared),
            writer: Mutex::new(writer),
            dropped: Default::default(),
            cap,
            closed,
        }
    }

    /// `audit.on_failure = "closed"` and the output cannot be written (the writer's last write
    /// failed and no later one succeeded): data requests are refused before they are forwarded
    /// (503). One atomic load. The state is as of the last write: lines wait up to
    /// `BATCH_PERIOD` for theirs, so the requests of the period in which the output failed are
    /// served before it is known (their records lost and counted), and a refused request's own
    /// line, or the writer's probe every `PROBE_PERIOD`, is what notices room again.
    pub fn refusing(&self) -> bool {
        self.closed
            && self.shared.as_ref().is_some_and(|s| {
                s.failing.load(std::sync::atomic::Ordering::Acquire)
                    || s.stalled.load(std::sync::atomic::Ordering::Acquire)
            })
    }

    /// Whether an admin change may be made: with `audit.on_failure = "closed"`, the lines
    /// pending are written first (the state is then as of now, not of the last period), and
    /// the change is refused while the output cannot be written. Blocks for one write at most.
    pub fn accepts_changes(&self) -> bool {
        if !self.closed {
            return true;
        }
        self.sync();
        !self.refusing()
    }

    /// Carries the state of `old`, the output this one replaces at a reload, when both write
    /// the same place: a reload must not open a closed gateway before a write succeeded (the
    /// new writer's first write, or its probe within `PROBE_PERIOD`, settles it).
    pub fn carry_failure_from(&self, old: &Audit) {
        if let (Some(new), Some(old)) = (&self.shared, &old.shared) {
            if old.failing.load(std::sync::atomic::Ordering::Acquire) {
                let missing = old.missing.load(std::sync::atomic::Ordering::Relaxed);
                new.missing
                    .fetch_add(missing, std::sync::atomic::Ordering::Relaxed);
                new.failing
                    .store(true, std::sync::atomic::Ordering::Release);
                // A sleeping writer waits for a line only: woken under the lock, it sees the
                // state and probes.
                let _batch = lock(&new.batch);
                new.wake.notify_one();
            }
        }
    }

    /// Data-request records dropped because the output stalled (exported as a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records lost because the output failed (a full disk, an I/O error): the audit log is
    /// fail-open, requests and admin changes go on while it cannot be written.
    pub fn lost(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.lost.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Appends a line to the batch; when the output is stalled and the batch is full (half of
    /// it for a refusal), keeps the line only for [`Room::Must`] (admin changes, which are rare
    /// and must be recorded), else drops and counts it (with `audit.on_failure = "closed"`, in
    /// the next `audit_gap` record too). Returns the batch number the line will go out with.
    fn append(&self, line: &[u8], room: Room) -> Option<u64> {
        let shared = self.shared.as_ref()?;
        let mut batch = lock(&shared.batch);
        if batch.closed {
            drop(batch);
            tracing::error!("The audit writer has stopped; an audit record is lost");
            return None;
        }
        let cap = match room {
            Room::Refused => self.cap / 2,
            _ => self.cap,
        };
        if room != Room::Must && batch.pending.len() + line.len() > cap {
            drop(batch);
            if self.closed {
                // The log says where records are missing (attack20d: a stall's drops left no
                // `audit_gap`, only a failure's did).
                shared
                    .missing
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if room == Room::Served {
                    shared
                        .stalled
                        .store(true, std::sync::atomic::Ordering::Release);
                }
            }
            let n = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n.is_multiple_of(10_000) {
                tracing::error!(
                    dropped = n + 1,
                    "The audit output is stalled; request records are being dropped"
                );
            }
            return None;
        }
        batch.pending.extend_from_slice(line);
        let number = batch.taken + 1;
        let wake = std::mem::take(&mut batch.asleep);
        batch.wakes += u64::from(wake);
        // Woken after the lock is let go (session 24): woken under it, the writer could run
        // into the held lock, sleep on it and be woken a second time by its release (at one
        // connection, 4.9 to 5.7 futex calls a wake-up between the two threads, 4.0 after). The
        // writer sees `asleep` cleared under the lock whenever it looks.
        drop(batch);
        if wake {
            WakeWriter(Arc::clone(shared)).after_this_task();
        }
        Some(number)
    }

    pub fn write(&self, event: Value) {
        self.write_in(event, Room::Served);
    }

    /// A record of a refusal (a failed admin authentication): dropped, never refusing, when
    /// the output stalls and half the batch is taken (`Room::Refused`).
    pub fn write_refused(&self, event: Value) {
        self.write_in(event, Room::Refused);
    }

    fn write_in(&self, event: Value, room: Room) {
        if self.shared.is_some() {
            if let Some(line) = line(event) {
                self.append(&line, room);
            }
        }
    }

    /// Waits until every line added so far is written and flushed.
    pub fn sync(&self) {
        let Some(shared) = &self.shared else { return };
        let mut batch = lock(&shared.batch);
        // What is pending goes out with the next batch; with nothing pending, everything
        // added so far went out with the batches already taken.
        let target = if batch.pending.is_empty() {
            batch.taken
        } else {
            batch.taken + 1
        };
        while batch.flushed < target && !batch.closed {
            batch.urgent = true;
            shared.wake.notify_one();
            // Counted under the lock the writer sets `flushed` under: a batch that goes out
            // after this look sees the count and tells this caller.
            batch.syncing += 1;
            batch = match shared.written.wait_timeout(batch, BATCH_PERIOD) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            batch.syncing -= 1;
        }
    }

    pub fn data(&self, e: &DataEvent) {
        if self.shared.is_none() {
            return;
        }
        // The thread's line buffer, taken for the line and given back: no allocation per line
        // (issue 10). A line that made it grow past a few KB does not keep it.
        let mut text = LINE.with(std::cell::Cell::take);
        text.clear();
        text.reserve(384);
        with_rfc3339(crate::time::now(), |at| {
            write_request_record(&mut text, e, at)
        });
        let room = match e.refused {
            true => Room::Refused,
            false => Room::Served,
        };
        match crate::auth::secret::redact_bytes(&text) {
            std::borrow::Cow::Borrowed(_) => {
                text.push(b'\n');
                self.append(&text, room);
            }
            std::borrow::Cow::Owned(mut redacted) => {
                redacted.push(b'\n');
                self.append(&redacted, room);
                // The line as written held secret-like text: wiped before the buffer is kept
                // (zeros; the next line clears it first).
                text.fill(0);
            }
        }
        if text.capacity() <= LINE_KEPT {
            LINE.with(|line| line.set(text));
        }
    }
}

impl crate::admin::AuditSink for Audit {
    fn admin_event(&self, event: Value) {
        // An admin change is answered only once its record is out.
        if let Some(line) = line(event) {
            self.append(&line, Room::Must);
        }
        self.sync();
    }

    fn accepts_changes(&self) -> bool {
        Audit::accepts_changes(self)
    }
}

/// Wakes the sleeping writer when dropped.
struct WakeWriter(Arc<Shared>);

impl WakeWriter {
    /// On a data worker's thread (`server::workers`), the wake is a task of its own, queued
    /// behind the task that added the line: a request's record is added as its answer's body
    /// ends, before hyper writes the answer, and the wake (a futex call; on one CPU, the writer
    /// scheduled in before the answer went out) came between the answer and its client at one
    /// connection (session 24). A worker's runtime only serves connections and never blocks,
    /// so the task runs within the tick; dropped unrun (the runtime ending), it still wakes
    /// the writer. Elsewhere (the main thread, whose runtime a caller may block, and threads
    /// with no runtime), the writer is woken at once.
    fn after_this_task(self) {
        if crate::server::workers::current() != 0 {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(async move { drop(self) }));
                return;
            }
        }
        drop(self);
    }
}

impl Drop for WakeWriter {
    fn drop(&mut self) {
        self.0.wake.notify_one();
    }
}

fn lock(m: &Mutex<Batch>) -> MutexGuard<'_, Batch> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One JSON line: the record with its schema version and time, secret-like text redacted
/// (paths and reasons echo client input; a secret pasted there must not be recorded).
fn line(mut event: Value) -> Option<Vec<u8>> {
    if let Some(obj) = event.as_object_mut() {
        obj.insert("v".into(), json!(1));
        obj.entry("at")
            .or_insert_with(|| json!(crate::time::rfc3339(crate::time::now())));
    }
    serde_json::to_vec(&event).ok().map(finish_line)
}

/// Redacts secret-like text from a serialised record and ends the line.
fn finish_line(text: Vec<u8>) -> Vec<u8> {
    // serde_json writes UTF-8; the fallback only guards the invariant.
    let mut line = match String::from_utf8(text) {
        Ok(s) => match crate::auth::secret::redact(&s) {
            std::borrow::Cow::Borrowed(_) => s.into_bytes(),
            std::borrow::Cow::Owned(r) => r.into_bytes(),
        },
        Err(_) => return Vec::new(),
    };
    line.push(b'\n');
    line
}

impl Drop for Audit {
    fn drop(&mut self) {
        // Closing lets the writer write what is pending, flush and exit.
        if let Some(shared) = self.shared.take() {
            lock(&shared.batch).closed = true;
            shared.wake.notify_one();
        }
        let writer = self.writer.get_mut().map(Option::take).unwrap_or(None);
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

/// Where the writer thread writes: stdout or the audit file (tests: any writer).
trait Output: Write + Send {
    /// The output's length, when it has one (a file), read before each batch.
    fn len(&self) -> Option<u64> {
        None
    }

    /// Cuts the output back to `len` (a file): what a failed batch left of itself goes.
    fn cut(&mut self, _len: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    /// What every writer of this output in the process holds while it writes a batch and cuts
    /// it back (a file's): whether the output holds a torn record. After a reload the old
    /// App's audit log (requests in flight hold it) and the new one write the same file; one
    /// writer's cut, back to the length it read before its batch, had taken the other's
    /// records written in between (attack19c).
    fn writers(&self) -> Option<Arc<Mutex<bool>>> {
        None
    }
}

impl Output for std::io::Stdout {}

/// The audit file, with the turn its writers take.
struct AuditFile {
    file: std::fs::File,
    writers: Arc<Mutex<bool>>,
}

impl Write for AuditFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Output for AuditFile {
    fn len(&self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.len())
    }

    fn cut(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }

    fn writers(&self) -> Option<Arc<Mutex<bool>>> {
        Some(Arc::clone(&self.writers))
    }
}

/// The writers' turn of the audit file at `path` (canonical): one for every audit log of this
/// process that writes it.
fn file_writers(path: &std::path::Path) -> Arc<Mutex<bool>> {
    type Files = Vec<(std::path::PathBuf, std::sync::Weak<Mutex<bool>>)>;
    static FILES: Mutex<Files> = Mutex::new(Vec::new());
    let mut files = FILES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    files.retain(|(_, w)| w.strong_count() > 0);
    if let Some(turn) = files
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, w)| w.upgrade())
    {
        return turn;
    }
    let turn = Arc::new(Mutex::new(false));
    files.push((path.to_path_buf(), Arc::downgrade(&turn)));
    turn
}

/// Writes `bytes` whole, then flushes; on failure, how many bytes reached the output.
fn write_whole(out: &mut dyn Output, bytes: &[u8]) -> Result<(), (usize, std::io::Error)> {
    let mut done = 0;
    while done < bytes.len() {
        match out.write(&bytes[done..]) {
            Ok(0) => return Err((done, std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    out.flush().map_err(|e| (done, e))
}

/// How long the output must have written without a failure before a run of failures is over
/// (logged as such): at the brink of a full disk, a batch now and then fits (in the last block,
/// or in what a cut freed) between failures, and that must not log every time.
const CALM: Duration = Duration::from_secs(2);

/// The writer's state across batches when the output fails (a full disk, an I/O error, the
/// file's file system read-only): the audit log is fail-open (requests and admin changes go
/// on), a run of failures is logged once when it starts and once when it ends (a write `CALM`
/// after its last failure), and the records lost are counted (`esgate_audit_lost`). A batch
/// that failed part-way is cut off the file, so no record is left half-written; where it cannot
/// be (stdout, or the cut fails), the next batch starts on a line of its own.
#[derive(Default)]
struct Failing {
    /// Records lost in the current run of failures, and when its last failure was; `None`
    /// while the output works.
    run: Option<(u64, std::time::Instant)>,
    /// The output holds the start of a record without its end.
    torn: bool,
}

impl Failing {
    /// Writes one batch (`lines`, whole lines, `records` of them audit records: a gap record
    /// is none) and accounts for the outcome (a failed batch's records added to `lost`);
    /// whether it was written.
    fn write(
        &mut self,
        out: &mut dyn Output,
        lines: &[u8],
        records: u64,
        lost: &std::sync::atomic::AtomicU64,
    ) -> bool {
        // The writers of one file take turns (and share whether it holds a torn record).
        let writers = out.writers();
        let mut turn = writers
            .as_deref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let torn = match turn.as_deref_mut() {
            Some(shared) => shared,
            None => &mut self.torn,
        };
        let mut before = out.len();
        let result = if *torn {
            write_whole(out, b"\n")
                .map_err(|(_, e)| (0, e))
                .and_then(|()| {
                    *torn = false;
                    // A cut of these lines keeps the `\n` that ends the torn record: cut back
                    // to before it, the next batch's first line was glued to the fragment
                    // (perf27b).
                    before = before.map(|len| len + 1);
                    write_whole(out, lines)
                })
        } else {
            write_whole(out, lines)
        };
        match result {
            Ok(()) => {
                if let Some((n, last)) = self.run {
                    if last.elapsed() >= CALM {
                        self.run = None;
                        tracing::warn!(lost = n, "The audit log is written again");
                    }
                }
                true
            }
            Err((written, e)) => {
                if written > 0 {
                    // Never past the end: a file cut short behind esgate (a `copytruncate`
                    // rotation) since `before` would be lengthened with zeros.
                    let cut = before
                        .filter(|&len| out.len().is_some_and(|now| now >= len))
                        .map(|len| out.cut(len));
                    *torn = !matches!(cut, Some(Ok(())));
                }
                drop(turn);
                lost.fetch_add(records, std::sync::atomic::Ordering::Relaxed);
                let now = std::time::Instant::now();
                match &mut self.run {
                    Some((n, last)) => {
                        *n += records;
                        *last = now;
                    }
                    None => {
                        tracing::error!(
                            error = %e,
                            "Cannot write the audit log; requests and admin changes go on, their records are lost (esgate_audit_lost) until it can be written again"
                        );
                        self.run = Some((records, now));
                    }
                }
                false
            }
        }
    }
}

/// With `audit.on_failure = "closed"`, the record written first after a failure (the writer's
/// probe, or at the head of the first batch that goes out): `{"type":"audit_gap","lost":N}`,
/// the `N` records lost since the last write that succeeded, so the log says where records are
/// missing.
fn gap_record(missing: u64) -> Vec<u8> {
    line(json!({"type": "audit_gap", "lost": missing})).unwrap_or_default()
}

/// The state after a write: `failing` while it failed, and the records lost since the last
/// write that succeeded. `told`: the records an `audit_gap` record of the write said were
/// missing (request threads add the ones a stall drops meanwhile: kept for the next one).
fn settle(shared: &Shared, written: bool, records: u64, told: u64) {
    use std::sync::atomic::Ordering;
    if written {
        shared.missing.fetch_sub(told, Ordering::Relaxed);
        shared.stalled.store(false, Ordering::Release);
    } else {
        shared.missing.fetch_add(records, Ordering::Relaxed);
    }
    shared.failing.store(!written, Ordering::Release);
}

/// The writer thread: every `BATCH_PERIOD` (or at once when someone waits in `sync`, or on
/// close) takes the pending lines, writes and flushes them outside the lock. With nothing
/// pending it sleeps until the next line (issue 10: an idle writer woke 100 times a second).
/// After a batch of more than one line (lines are coming steadily) it first waits one more
/// period awake ([`linger`]): lines that come meanwhile wake no one.
fn write_batches(shared: &Shared, mut out: Box<dyn Output>) {
    use std::sync::atomic::Ordering;
    let mut failing = Failing::default();
    let mut spare = Vec::new();
    // The last batch held more than one line.
    let mut steady = false;
    loop {
        let mut batch = lock(&shared.batch);
        let mut probe = false;
        // The lines a lingering period gathered go out at its end, without a second period.
        let mut gathered = false;
        if steady {
            (batch, gathered) = linger(shared, batch);
        }
        if batch.pending.is_empty() && !batch.urgent && !batch.closed {
            gathered = false;
            batch.asleep = true;
            while batch.asleep && !batch.urgent && !batch.closed {
                // A closed gateway refusing everything may get no line to try the output with:
                // the writer tries it itself.
                if shared.probes && shared.failing.load(Ordering::Acquire) {
                    let (guard, waited) = match shared.wake.wait_timeout(batch, PROBE_PERIOD) {
                        Ok(woken) => woken,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    batch = guard;
                    if waited.timed_out() && batch.asleep && !batch.urgent && !batch.closed {
                        probe = true;
                        break;
                    }
                } else {
                    batch = match shared.wake.wait(batch) {
                        Ok(guard) => guard,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
            }
            batch.asleep = false;
        }
        if probe {
            drop(batch);
            let told = shared.missing.load(Ordering::Relaxed);
            let gap = gap_record(told);
            let written = failing.write(out.as_mut(), &gap, 0, &shared.lost);
            settle(shared, written, 0, told);
            continue;
        }
        // A line arrived: gather more for one period before writing them together.
        if !gathered && !batch.urgent && !batch.closed {
            batch = match shared.wake.wait_timeout(batch, BATCH_PERIOD) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        batch.rounds += 1;
        batch.urgent = false;
        let closing = batch.closed;
        if batch.pending.is_empty() {
            if closing {
                break;
            }
            continue;
        }
        std::mem::swap(&mut batch.pending, &mut spare);
        batch.taken += 1;
        let number = batch.taken;
        drop(batch);
        let records = memchr::memchr_iter(b'\n', &spare).count() as u64;
        steady = records > 1;
        let missing = shared.missing.load(Ordering::Relaxed);
        let (written, told) =
            if shared.probes && (shared.failing.load(Ordering::Relaxed) || missing > 0) {
                // The first batch after a failure says what is missing before it; after a stall,
                // whose drops came once this batch's room was full, after it.
                let lines = if shared.failing.load(Ordering::Relaxed) {
                    let mut lines = gap_record(missing);
                    lines.extend_from_slice(&spare);
                    lines
                } else {
                    let mut lines = std::mem::take(&mut spare);
                    lines.extend_from_slice(&gap_record(missing));
                    lines
                };
                let written = failing.write(out.as_mut(), &lines, records, &shared.lost);
                if spare.capacity() == 0 {
                    spare = lines;
                }
                (written, missing)
            } else {
                (
                    failing.write(out.as_mut(), &spare, records, &shared.lost),
                    0,
                )
            };
        // Before `flushed`: a `sync` caller (an admin change's check) reads the state after it.
        settle(shared, written, records, told);
        // Keep the allocation for the next batch, but not a huge one a burst left behind.
        spare.clear();
        if spare.capacity() > PENDING_CAP / 4 {
            spare = Vec::new();
        }
        let mut batch = lock(&shared.batch);
        batch.flushed = number;
        let syncing = batch.syncing > 0;
        if syncing {
            batch.notices += 1;
        }
        drop(batch);
        if syncing {
            shared.written.notify_all();
        }
    }
    let _ = out.flush();
}

/// After a batch of several lines, the writer waits one more period without sleeping: `asleep`
/// stays false, so the lines that come meanwhile are only appended, and go out at the period's
/// end (session 26: at a steady rate the request paths made one futex wake-up a batch, and
/// the writer, woken on the workers' CPU, ran in between a worker's requests; now the writer
/// wakes once a period, on its timer). A period that gathers nothing counts as a round, and the
/// writer goes to sleep after it; a lone line (a batch of one) is followed by sleep at once, as
/// before, so an idle gateway's writer pays at most one such period after a busy spell. Returns
/// the batch and whether it gathered lines (or was cut short by a `sync` or by closing): the
/// caller writes them without waiting another period.
fn linger<'a>(shared: &Shared, batch: MutexGuard<'a, Batch>) -> (MutexGuard<'a, Batch>, bool) {
    if !batch.pending.is_empty() || batch.urgent || batch.closed {
        return (batch, true);
    }
    let mut batch = match shared.wake.wait_timeout(batch, BATCH_PERIOD) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    };
    if batch.pending.is_empty() && !batch.urgent && !batch.closed {
        batch.rounds += 1;
        return (batch, false);
    }
    (batch, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// docs/configuration.md shows a request line and explains each of its fields: it has
    /// exactly the keys esgate writes (`link_id` only for share links).
    #[test]
    fn the_documented_request_line_has_the_keys_written() {
        let doc = include_str!("../docs/configuration.md");
        let line = doc
            .lines()
            .find(|l| l.starts_with("{\"type\":\"request\""))
            .expect("the configuration reference shows a request line");
        let documented: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let mut out = Vec::new();
        write_request_record(&mut out, &DataEvent::default(), "2026-01-01T00:00:00Z");
        let written: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&documented), keys(&written));
        for key in keys(&written)
            .iter()
            .filter(|k| !["type", "v", "at"].contains(&k.as_str()))
        {
            assert!(doc.contains(&format!("`{key}`")), "{key} is not explained");
        }
    }

    /// A sink tests can read while the writer thread owns its clone.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Output for Sink {}

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(shared: &Sink) -> Vec<Value> {
        String::from_utf8(shared.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_written_in_order_and_sync_waits_for_them() {
        let shared = Sink::default();
        let audit = Audit::to_writer(Box::new(shared.clone()));
        for i in 0..1000 {
            audit.write(json!({"type": "request", "n": i}));
        }
        audit.sync();
        let got = lines(&shared);
        assert_eq!(got.len(), 1000);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, l)| l["n"] == i && l["v"] == 1));
    }

    #[test]
    fn an_idle_writer_sleeps_until_the_next_line() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let rounds = |audit: &Audit| lock(&audit.shared.as_ref().unwrap().batch).rounds;
        // Ten periods with nothing to write: the writer does not wake (it woke on every period).
        std::thread::sleep(BATCH_PERIOD * 10);
        assert_eq!(rounds(&audit), 0);
        // A line wakes it and goes out without a sync.
        audit.write(json!({"type": "request", "n": 1}));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lines(&sink).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(lines(&sink).len(), 1);
        // Idle again: at most the round that found nothing more before it slept.
        let after = rounds(&audit);
        std::thread::sleep(BATCH_PERIOD * 10);
        assert!(
            rounds(&audit) <= after + 1,
            "{} > {}",
            rounds(&audit),
            after + 1
        );
        // A second line after the idle spell still goes out.
        audit.write(json!({"type": "request", "n": 2}));
        audit.sync();
        assert_eq!(lines(&sink).len(), 2);
    }

    /// Session 26: lines that keep coming find the writer awake (it waits a period after a
    /// batch of several before it sleeps): only the first wakes it, where each batch began with
    /// a wake-up (a futex call on the request's thread, and the writer run on its CPU).
    #[test]
    fn lines_that_keep_coming_wake_the_writer_once() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let state = |audit: &Audit| {
            let batch = lock(&audit.shared.as_ref().unwrap().batch);
            (batch.wakes, batch.taken)
        };
        // A line every millisecond (or as often as a loaded machine lets this thread run)
        // for thirty periods.
        let until = std::time::Instant::now() + BATCH_PERIOD * 30;
        let mut n = 0;
        while std::time::Instant::now() < until {
            audit.write(json!({"type": "request", "n": n}));
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        audit.sync();
        let (wakes, batches) = state(&audit);
        assert_eq!(lines(&sink).len(), n);
        assert!(batches >= 5, "{batches} batches");
        // Before: one wake-up a batch. A scheduler that holds this thread back more than a
        // period now and then lets the writer sleep in between: a few more (half the batches
        // leaves room for a loaded CI machine; the old writer woke for every one).
        assert!(
            wakes * 2 <= batches,
            "{wakes} wake-ups for {batches} batches of {n} lines"
        );
        // Idle again: the writer sleeps after at most one period that gathered nothing.
        std::thread::sleep(BATCH_PERIOD * 5);
        let rounds = lock(&audit.shared.as_ref().unwrap().batch).rounds;
        std::thread::sleep(BATCH_PERIOD * 10);
        assert_eq!(lock(&audit.shared.as_ref().unwrap().batch).rounds, rounds);
        assert!(lock(&audit.shared.as_ref().unwrap().batch).asleep);
        // And the next line still goes out, woken.
        audit.write(json!({"type": "request", "n": n}));
        audit.sync();
        assert_eq!(lines(&sink).len(), n + 1);
    }

    /// perf27b: the writer tells `sync` callers a batch went out only while one waits: batches
    /// nobody waits for make no `notify_all` (a futex call each), and a `sync` still returns
    /// once its lines are out, told rather than at its wait's period.
    #[test]
    fn batches_nobody_waits_for_tell_no_one() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let state = |audit: &Audit| {
            let batch = lock(&audit.shared.as_ref().unwrap().batch);
            (batch.notices, batch.flushed)
        };
        for n in 0..5 {
            audit.write(json!({"type": "request", "n": n}));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while lines(&sink).len() <= n && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        let (notices, flushed) = state(&audit);
        assert_eq!(lines(&sink).len(), 5);
        assert!(flushed >= 1, "{flushed} batches");
        assert_eq!(notices, 0, "{flushed} batches nobody waited for");
        // A caller waiting in `sync` is told (one whose line the writer took and wrote before
        // it looked, on a loaded machine, waits for nothing: tried again).
        let mut n = 5;
        while n < 25 && state(&audit).0 == 0 {
            audit.write(json!({"type": "request", "n": n}));
            audit.sync();
            n += 1;
            assert_eq!(lines(&sink).len(), n, "synced");
        }
        assert!(state(&audit).0 >= 1, "the waiting caller was told");
    }

    /// Session 24: on a data worker, the wake of a sleeping writer is a task queued behind
    /// the one that added the line (so that it comes after the answer's write). The line goes
    /// out whether that task runs or its runtime ends first: a wake task dropped unrun still
    /// wakes the writer, else the line would wait for the next one.
    #[test]
    fn a_line_added_on_a_worker_goes_out_whether_its_wake_task_runs_or_not() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let out = |n: usize| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while lines(&sink).len() < n && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            lines(&sink).len()
        };
        let asleep = |audit: &Audit| lock(&audit.shared.as_ref().unwrap().batch).asleep;
        crate::server::workers::as_worker(1, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            std::thread::sleep(BATCH_PERIOD * 3);
            assert!(asleep(&audit));
            // The wake task runs once the task that added the line yields.
            runtime.block_on(async {
                audit.write(json!({"type": "request", "n": 1}));
                tokio::task::yield_now().await;
            });
            assert_eq!(out(1), 1);
            std::thread::sleep(BATCH_PERIOD * 3);
            assert!(asleep(&audit));
            // The runtime ends before the wake task runs.
            runtime.block_on(async { audit.write(json!({"type": "request", "n": 2})) });
            drop(runtime);
        });
        assert_eq!(
            out(2),
            2,
            "the second line waits for a wake that never came"
        );
    }

    #[test]
    fn admin_events_are_out_when_the_call_returns_and_drop_drains_the_rest() {
        use crate::admin::AuditSink;
        let shared = Sink::default();
        let audit = Audit::to_writer(Box::new(shared.clone()));
        audit.admin_event(json!({"type": "admin", "action": "token.create"}));
        assert_eq!(lines(&shared)[0]["action"], "token.create");
        audit.write(json!({"type": "request", "path": "/esg_abc123/_search"}));
        drop(audit);
        let got = lines(&shared);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["path"], "/esg_[redacted]/_search");
    }

    /// Issue 10 review: a thread's line buffer is reused. Lines of every size (past the kept
    /// capacity too), redacted or not, escaped or not, one after the other on one thread: each
    /// is valid JSON holding its own event's fields and nothing of the previous line's.
    #[test]
    fn a_reused_line_buffer_carries_nothing_from_the_line_before() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let secret = crate::auth::secret::Secret::generate();
        let body = secret.expose()[4..].to_owned();
        let paths = [
            format!("/{}/_search", "x".repeat(LINE_KEPT * 2)),
            "/a".to_owned(),
            format!("/{}/_search", secret.expose()),
            "/b".to_owned(),
            format!("/q\\u2028\u{2028}\"{}", "y".repeat(300)),
            "/".to_owned(),
            format!("/esg%5f{body}"),
            "/c".to_owned(),
        ];
        for (i, path) in paths.iter().enumerate() {
            audit.data(&DataEvent {
                request_id: format!("r{i}"),
                client: "127.0.0.1".into(),
                method: "GET".into(),
                path: path.clone(),
                duration_ms: 999_999_999.999_6,
                ..DataEvent::default()
            });
        }
        audit.sync();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains(&body));
        // Session 11: the buffer a redacted line was written in is kept wiped.
        audit.data(&DataEvent {
            path: format!("/{}", secret.expose()),
            ..DataEvent::default()
        });
        let kept = LINE.with(std::cell::Cell::take);
        assert!(!kept.is_empty() && kept.iter().all(|&b| b == 0), "{kept:?}");
        audit.sync();
        let got = lines(&sink);
        let got = &got[..paths.len()];
        for (i, (line, path)) in got.iter().zip(&paths).enumerate() {
            assert_eq!(line["request_id"], format!("r{i}"));
            let want = crate::auth::secret::redact(path);
            assert_eq!(line["path"], *want, "{i}");
            assert_eq!(line["duration_ms"], 1e9);
        }
    }

    #[test]
    fn request_lines_carry_every_field_and_go_out_without_a_sync() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        audit.data(&DataEvent {
            request_id: "r1".into(),
            token_id: Some("t1".into()),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/logs/_search?q=esg_abcdef".into(),
            action: Some("search"),
            indices: vec!["logs".into()],
            status: 200,
            decision: "allow",
            bytes: 12,
            duration_ms: 1.23456,
            ..DataEvent::default()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lines(&sink).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let got = lines(&sink);
        assert_eq!(got.len(), 1);
        let l = &got[0];
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "request_id",
                "token_id",
                "token_name",
                "client",
                "method",
                "path",
                "action",
                "indices",
                "status",
                "decision",
                "reason",
                "bytes",
                "duration_ms",
                "v",
                "at"
            ]
        );
        assert_eq!(l["type"], "request");
        assert_eq!(l["token_name"], Value::Null);
        assert_eq!(l["indices"], json!(["logs"]));
        assert_eq!(l["duration_ms"], 1.235);
        assert_eq!(l["path"], "/logs/_search?q=esg_[redacted]");
        assert!(l["at"].as_str().is_some_and(|a| a.ends_with('Z')));
    }

    /// Review 12: a secret pasted right after a secret-like run (here a first secret) is not
    /// in the request line; its digits were written after the first run's redaction.
    #[test]
    fn a_secret_after_a_secret_like_run_is_not_in_the_request_line() {
        let sink = Sink::default();
        let audit = Audit::to_writer(Box::new(sink.clone()));
        let (first, second) = (
            crate::auth::secret::Secret::generate(),
            crate::auth::secret::Secret::generate(),
        );
        audit.data(&DataEvent {
            request_id: "r1".into(),
            method: "GET".into(),
            path: format!("/logs/_search?q={}{}", first.expose(), second.expose()),
            reason: Some(format!("bad [esg_x{}]", second.expose())),
            decision: "deny",
            ..DataEvent::default()
        });
        drop(audit);
        let got = lines(&sink);
        assert_eq!(got.len(), 1);
        let text = got[0].to_string();
        assert!(!text.contains(&second.expose()[4..]), "{text}");
        assert!(!text.contains(&first.expose()[4..]), "{text}");
        assert_eq!(got[0]["path"], "/logs/_search?q=esg_[redacted]");
        assert_eq!(got[0]["reason"], "bad [esg_[redacted]]");
    }

    /// The request record as serde_json wrote it before the hand-written writer (issue 10):
    /// the derive the line was made with, kept here as the reference.
    #[derive(serde::Serialize)]
    struct Reference<'a> {
        r#type: &'static str,
        request_id: &'a str,
        token_id: Option<&'a str>,
        token_name: Option<&'a str>,
        client: &'a str,
        method: &'a str,
        path: &'a str,
        action: Option<&'static str>,
        indices: &'a [String],
        status: u16,
        decision: &'static str,
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        link_id: Option<&'a str>,
        bytes: u64,
        duration_ms: f64,
        v: u8,
        at: String,
    }

    /// The token's id and name read from its shared record write the line its copies wrote,
    /// and a debug print of the event shows the two texts, never the rest of the record.
    #[test]
    fn a_shared_tokens_id_and_name_are_recorded_as_their_copies_were() {
        let token = Arc::new(Token {
            name: "grafana \"prod\"".into(),
            ..Token::sample("tok_7", 0xab)
        });
        let shared = DataEvent {
            request_id: "00ff00ff00ff00ff".into(),
            token_id: Some(TokenText::Id(Arc::clone(&token))),
            token_name: Some(TokenText::Name(Arc::clone(&token))),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/logs-a/_search".into(),
            decision: "allow",
            ..DataEvent::default()
        };
        let copied = DataEvent {
            token_id: Some(token.id.clone().into()),
            token_name: Some(token.name.clone().into()),
            ..shared.clone()
        };
        let line = |e: &DataEvent| {
            let mut out = Vec::new();
            write_request_record(&mut out, e, "2026-12-05T07:00:00Z");
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(&shared), line(&copied));
        assert!(line(&shared).contains(r#""token_id":"tok_7","token_name":"grafana \"prod\"""#));
        let shown = format!("{shared:?}");
        assert_eq!(shown, format!("{copied:?}"));
        assert!(
            !shown.contains("logs-*") && !shown.contains("SecretHash"),
            "{shown}"
        );
    }

    #[test]
    fn the_request_record_is_byte_for_byte_what_serde_json_wrote() {
        let plain = DataEvent {
            request_id: "00ff00ff00ff00ff".into(),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/".into(),
            decision: "deny",
            ..DataEvent::default()
        };
        let cases = [
            plain.clone(),
            DataEvent {
                token_id: Some("tok_1".into()),
                token_name: Some("grafana \"prod\" \\ é ✓ \u{7f}".into()),
                client: "::1".into(),
                method: "POST".into(),
                path: "/a\tb\nc\u{1}\u{1f}\"/_search".into(),
                action: Some("search"),
                indices: vec!["logs-a".into(), "we\"ird".into(), String::new()],
                status: 200,
                decision: "allow",
                reason: Some("the [q] parameter\r\n is not allowed".into()),
                link_id: Some("lnk_9".into()),
                bytes: u64::MAX,
                duration_ms: 12.345678,
                ..plain.clone()
            },
            DataEvent {
                status: 65535,
                duration_ms: 0.0,
                ..plain.clone()
            },
            DataEvent {
                duration_ms: f64::NAN,
                bytes: 10,
                ..plain.clone()
            },
            DataEvent {
                duration_ms: f64::INFINITY,
                link_id: Some(String::new()),
                ..plain.clone()
            },
            DataEvent {
                duration_ms: 1e21,
                ..plain.clone()
            },
            DataEvent {
                duration_ms: 0.0004,
                ..plain.clone()
            },
            // An extension method's name is still scanned (and escaped).
            DataEvent {
                method: std::borrow::Cow::Owned("PROP\"FIND\\".into()),
                ..plain
            },
        ];
        for e in &cases {
            let at = "2026-12-05T07:00:00Z";
            let reference = Reference {
                r#type: "request",
                request_id: &e.request_id,
                token_id: e.token_id.as_deref(),
                token_name: e.token_name.as_deref(),
                client: &e.client,
                method: &e.method,
                path: &e.path,
                action: e.action,
                indices: &e.indices,
                status: e.status,
                decision: e.decision,
                reason: e.reason.as_deref(),
                link_id: e.link_id.as_deref(),
                bytes: e.bytes,
                duration_ms: (e.duration_ms * 1000.0).round() / 1000.0,
                v: 1,
                at: at.to_string(),
            };
            let mut written = Vec::new();
            write_request_record(&mut written, e, at);
            let written = String::from_utf8(written).unwrap();
            assert_eq!(written, serde_json::to_string(&reference).unwrap());
        }
    }

    /// The strings `write_request_record` copies without the escape scan need none, as each
    /// of their makers makes them (perf21b): request ids, addresses' text (`proxy::ip_text`
    /// is `IpAddr`'s `Display`, its tests say), the standard methods' names, the times, and
    /// the decisions.
    #[test]
    fn esgates_own_strings_need_no_escape() {
        use crate::es::request::tree::needs_escape;
        for _ in 0..10_000 {
            let id = crate::proxy::request_id();
            assert!(!needs_escape(id.as_bytes()), "{id:?}");
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut addresses: Vec<std::net::IpAddr> = vec![
            "0.0.0.0".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "::".parse().unwrap(),
            "::1".parse().unwrap(),
            "::ffff:10.1.2.3".parse().unwrap(),
            "::10.1.2.3".parse().unwrap(),
            "fe80::1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        ];
        for _ in 0..10_000 {
            let n = u128::from(next()) << 64 | u128::from(next());
            addresses.push(std::net::Ipv6Addr::from(n).into());
            addresses.push(std::net::Ipv4Addr::from(n as u32).into());
        }
        for ip in addresses {
            let text = ip.to_string();
            assert!(!needs_escape(text.as_bytes()), "{text:?}");
        }
        for method in [
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::HEAD,
            http::Method::OPTIONS,
            http::Method::PATCH,
        ] {
            let name = method_name(&method);
            assert!(matches!(name, std::borrow::Cow::Borrowed(_)));
            assert!(!needs_escape(name.as_bytes()), "{name:?}");
        }
        for t in [
            i64::MIN,
            -1,
            0,
            1_700_000_000,
            253_402_300_799,
            253_402_300_800,
            i64::MAX,
        ]
        .into_iter()
        .chain((0..1000).map(|_| next() as i64 >> 20))
        {
            let at = crate::time::rfc3339(t);
            assert!(!needs_escape(at.as_bytes()), "{at:?}");
        }
        for decision in ["allow", "deny"] {
            assert!(!needs_escape(decision.as_bytes()));
        }
    }

    /// The duration is written as serde_json wrote the rounded `f64`.
    #[test]
    fn durations_are_written_as_serde_json_wrote_them() {
        let mut values = vec![
            0.0,
            -0.0,
            0.0004,
            0.0005,
            0.001,
            0.0015,
            0.01,
            0.1,
            0.5,
            1.0,
            1.23456,
            9.9995,
            10.0,
            12.345678,
            99.999,
            100.05,
            123_456.789,
            999_999_999.999,
            999_999_999.999_6,
            1e9,
            1e12,
            1e16,
            1e21,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ];
        for k in 0..20_000u64 {
            values.push(k as f64 / 1000.0);
            values.push(k as f64 * 0.0137);
            values.push((k * 7_919_993) as f64 / 997.0);
        }
        for v in values {
            let mut written = Vec::new();
            json_millis(&mut written, v);
            let written = String::from_utf8(written).unwrap();
            let rounded = (v * 1000.0).round() / 1000.0;
            let reference = serde_json::to_string(&rounded).unwrap_or_else(|_| "null".into());
            assert_eq!(written, reference, "{v}");
        }
    }

    /// The audit line's integers are `Display`'s, at every length (session 23).
    #[test]
    fn integers_are_written_as_display_writes_them() {
        let mut values: Vec<u64> = (0..10_000).collect();
        for power in 1..20 {
            let p = 10u64.pow(power);
            values.extend([p - 1, p, p + 1, p.saturating_mul(3).saturating_add(7)]);
        }
        values.extend([u64::MAX - 1, u64::MAX]);
        for v in values {
            let mut written = b"x".to_vec();
            json_u64(&mut written, v);
            assert_eq!(String::from_utf8(written).unwrap(), format!("x{v}"));
        }
    }

    #[test]
    fn method_names_are_the_methods_text() {
        for text in [
            "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "get",
            "PROPFIND", "X",
        ] {
            let method = http::Method::from_bytes(text.as_bytes()).unwrap();
            assert_eq!(method_name(&method), method.as_str());
        }
        // An extension method is a token of any length: recorded cut, as the path is.
        let long = http::Method::from_bytes("X".repeat(100_000).as_bytes()).unwrap();
        assert_eq!(method_name(&long), "X".repeat(MAX_METHOD_CHARS));
        let just = http::Method::from_bytes("Y".repeat(MAX_METHOD_CHARS).as_bytes()).unwrap();
        assert_eq!(method_name(&just), just.as_str());
    }

    #[test]
    fn the_time_of_a_line_is_formatted_again_when_the_second_changes() {
        let first = with_rfc3339(1_700_000_000, str::to_owned);
        assert_eq!(first, crate::time::rfc3339(1_700_000_000));
        assert_eq!(with_rfc3339(1_700_000_000, str::to_owned), first);
        assert_eq!(
            with_rfc3339(1_700_000_001, str::to_owned),
            crate::time::rfc3339(1_700_000_001)
        );
    }

    /// A sink that blocks every write until released (a stalled pipe).
    struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>);

    impl Output for Stalled {}

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.0;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_request_records_instead_of_blocking() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let audit = Audit::with_cap(
            Box::new(Stalled(Arc::clone(&gate))),
            64 * 1024,
            AuditOnFailure::Open,
        );
        let started = std::time::Instant::now();
        // Far more than the cap plus the batch the writer holds while its output blocks.
        for i in 0..20_000 {
            audit.write(json!({"type": "request", "n": i}));
        }
        let elapsed = started.elapsed();
        let dropped = audit.dropped();
        // Open the gate before asserting: dropping the audit log joins its writer.
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        drop(audit);
        assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
        assert!(dropped >= 10_000, "dropped {dropped}");
    }

    /// `audit.on_failure = "closed"`: an output that stalls (a full pipe) until request records
    /// are dropped refuses as a failing one does, and serves again once a batch went out.
    #[test]
    fn closed_refuses_while_a_stalled_output_drops_records() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let audit = Audit::with_cap(
            Box::new(Stalled(Arc::clone(&gate))),
            4 * 1024,
            AuditOnFailure::Closed,
        );
        let mut n = 0;
        let mut early = false;
        while audit.dropped() == 0 && n < 10_000 {
            early |= audit.refusing();
            audit.write(json!({"type": "request", "n": n}));
            n += 1;
        }
        let refused = audit.refusing();
        // Open the gate before asserting: dropping the audit log joins its writer.
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        assert!(audit.dropped() > 0, "nothing dropped");
        assert!(!early, "refused before a record was dropped");
        assert!(refused, "records dropped, requests served");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while audit.refusing() {
            assert!(std::time::Instant::now() < deadline, "still refusing");
            audit.write(json!({"type": "request", "n": n}));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// attack20d: with `audit.on_failure = "closed"` and a stalled output, a flood of refused
    /// requests' records (any client can make them, with no credential) is dropped past half
    /// the batch and never refuses: served records still find room, and the gateway stays open
    /// for every tenant. Served records dropped still refuse.
    #[test]
    fn refusals_flooding_a_stalled_output_neither_close_the_gateway_nor_crowd_out_served_records() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let audit = Audit::with_cap(
            Box::new(Stalled(Arc::clone(&gate))),
            8 * 1024,
            AuditOnFailure::Closed,
        );
        let event = |refused: bool| DataEvent {
            request_id: "0123456789abcdef".into(),
            client: "192.0.2.1".into(),
            method: "GET".into(),
            path: "/x".repeat(256),
            status: 401,
            decision: "deny",
            reason: Some("missing credentials".into()),
            refused,
            ..DataEvent::default()
        };
        for _ in 0..2_000 {
            audit.data(&event(true));
        }
        let dropped_refusals = audit.dropped();
        let refusing_after_refusals = audit.refusing();
        let before = audit.dropped();
        for _ in 0..4 {
            audit.data(&event(false));
        }
        let served_kept = audit.dropped() == before;
        let mut n = 0;
        while audit.dropped() == before && n < 10_000 {
            audit.data(&event(false));
            n += 1;
        }
        let refusing_after_served = audit.refusing();
        // Open the gate before asserting: dropping the audit log joins its writer.
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        assert!(dropped_refusals > 1_000, "dropped {dropped_refusals}");
        assert!(
            !refusing_after_refusals,
            "refusals' records closed the gateway"
        );
        assert!(served_kept, "served records found no room");
        assert!(
            refusing_after_served,
            "served records dropped, requests served"
        );
    }

    /// A sink that blocks every write until released, then keeps what it is given.
    struct StalledKept(Arc<(Mutex<bool>, std::sync::Condvar)>, Arc<Mutex<Vec<u8>>>);

    impl Output for StalledKept {}

    impl Write for StalledKept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.0;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// attack20d: with `audit.on_failure = "closed"`, the records a stall dropped are told by
    /// an `audit_gap` record, as a failure's are (before, the file showed no gap where they
    /// were missing).
    #[test]
    fn a_stalls_dropped_records_are_told_by_an_audit_gap() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let audit = Audit::with_cap(
            Box::new(StalledKept(Arc::clone(&gate), Arc::clone(&kept))),
            4 * 1024,
            AuditOnFailure::Closed,
        );
        let mut n = 0;
        while audit.dropped() < 5 && n < 10_000 {
            audit.write(json!({"type": "request", "n": n}));
            n += 1;
        }
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        // Lines until one is written: every drop came before it, and is told by then.
        for k in 0.. {
            audit.write(json!({"type": "request", "last": k}));
            audit.sync();
            let text = String::from_utf8(kept.lock().unwrap().clone()).unwrap();
            if text.contains(&format!("\"last\":{k},")) {
                break;
            }
            assert!(k < 100, "nothing written");
        }
        let dropped = audit.dropped();
        let text = String::from_utf8(kept.lock().unwrap().clone()).unwrap();
        let told: u64 = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "audit_gap")
            .map(|v| v["lost"].as_u64().unwrap())
            .sum();
        assert!(dropped >= 5, "nothing dropped");
        assert_eq!(told, dropped, "{text}");
        assert!(!audit.refusing());
    }

    type Hook = Box<dyn FnOnce() + Send>;

    /// A file on a disk with `room` bytes left (`cut` as a file does it, when `cuts`).
    #[derive(Clone)]
    struct Disk {
        data: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
        cuts: bool,
        /// Run by the next `len` once it has read the length (what happens between a writer's
        /// `len` and its write).
        at_len: Arc<Mutex<Option<Hook>>>,
        /// Every writer of this disk's file shares it, as every writer of one path does.
        writers: Arc<Mutex<bool>>,
    }

    impl Disk {
        fn new(room: usize, cuts: bool) -> Disk {
            Disk {
                data: Arc::default(),
                room: Arc::new(Mutex::new(room)),
                cuts,
                at_len: Arc::default(),
                writers: Arc::default(),
            }
        }

        fn text(&self) -> String {
            String::from_utf8(self.data.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            let n = buf.len().min(*room);
            *room -= n;
            self.data.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output for Disk {
        fn len(&self) -> Option<u64> {
            let len = self.cuts.then(|| self.data.lock().unwrap().len() as u64);
            let hook = self.at_len.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
            len
        }
        fn writers(&self) -> Option<Arc<Mutex<bool>>> {
            Some(Arc::clone(&self.writers))
        }
        fn cut(&mut self, len: u64) -> std::io::Result<()> {
            // As `set_len` does: a length past the end extends the file with zeros.
            let mut data = self.data.lock().unwrap();
            let freed = data.len().saturating_sub(len as usize);
            data.resize(len as usize, 0);
            *self.room.lock().unwrap() += freed;
            Ok(())
        }
    }

    /// Admin records (each waits for its batch) numbered from `from`.
    fn admin_lines(audit: &Audit, from: usize, n: usize) {
        use crate::admin::AuditSink;
        for i in from..from + n {
            audit.admin_event(json!({"type": "admin", "n": i, "pad": "x".repeat(100)}));
        }
    }

    /// rel19: a full disk took part of a batch; the next batch, once there was room again,
    /// continued that half-written record (`{"type":"request{"type":"request",...`), so the
    /// file no longer parsed as JSON lines. The part is cut off; the lost records are counted.
    #[test]
    fn a_batch_the_full_disk_took_part_of_is_cut_off_and_counted() {
        let disk = Disk::new(500, true);
        let audit = Audit::to_writer(Box::new(disk.clone()));
        admin_lines(&audit, 0, 10);
        let lost = audit.lost();
        assert!(lost >= 6, "lost {lost}");
        *disk.room.lock().unwrap() += 10_000;
        admin_lines(&audit, 10, 3);
        let text = disk.text();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(records.len() as u64, 13 - lost);
        let numbers: Vec<u64> = records.iter().map(|r| r["n"].as_u64().unwrap()).collect();
        assert_eq!(&numbers[numbers.len() - 3..], [10, 11, 12]);
        assert_eq!(audit.lost(), lost, "nothing lost once there is room");
    }

    /// Where the output cannot be cut (stdout), the record after the failure starts a line of
    /// its own: one line is a fragment, every other line a whole record.
    #[test]
    fn after_a_torn_record_that_stays_the_next_starts_a_line_of_its_own() {
        let disk = Disk::new(500, false);
        let audit = Audit::to_writer(Box::new(disk.clone()));
        admin_lines(&audit, 0, 10);
        *disk.room.lock().unwrap() += 10_000;
        admin_lines(&audit, 10, 3);
        let text = disk.text();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).is_err())
            .collect();
        assert_eq!(bad.len(), 1, "{text}");
        let last: Vec<Value> = text
            .lines()
            .rev()
            .take(3)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(last[0]["n"], 12);
        assert_eq!(last[2]["n"], 10);
    }

    /// attack19c: after a reload the old App's audit log (requests in flight hold it) and the
    /// new one write the same file. A batch one writer failed part-way was cut back to the
    /// length it read before writing, so the other's records written in between went too: an
    /// admin change acknowledged as recorded, gone. Writers of one file take turns now.
    #[test]
    fn a_cut_never_takes_another_writers_records() {
        use crate::admin::AuditSink;
        let disk = Disk::new(600, true);
        let old = Audit::to_writer(Box::new(disk.clone()));
        let new = Arc::new(Audit::to_writer(Box::new(disk.clone())));
        let other = Arc::clone(&new);
        *disk.at_len.lock().unwrap() = Some(Box::new(move || {
            // The other writer's record, written (when it may) while this one is at its len.
            let (done, wait) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                other.admin_event(json!({"type": "admin", "n": "acknowledged"}));
                let _ = done.send(());
            });
            let _ = wait.recv_timeout(std::time::Duration::from_millis(300));
        }));
        old.admin_event(json!({"type": "admin", "n": 0, "pad": "x".repeat(1000)}));
        assert_eq!(old.lost(), 1);
        new.sync();
        let text = disk.text();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(records.len(), 1, "{text}");
        assert_eq!(records[0]["n"], "acknowledged");
    }

    /// attack19c: a file cut short behind the writer (a `copytruncate` rotation) between the
    /// length it read and a batch the disk took part of: cutting back to that length would
    /// extend the file with zeros after the fragment. The cut never lengthens the file.
    #[test]
    fn a_cut_never_lengthens_a_file_truncated_behind_the_writer() {
        use crate::admin::AuditSink;
        let disk = Disk::new(10_000, true);
        let audit = Audit::to_writer(Box::new(disk.clone()));
        admin_lines(&audit, 0, 3);
        let (data, room) = (Arc::clone(&disk.data), Arc::clone(&disk.room));
        *disk.at_len.lock().unwrap() = Some(Box::new(move || {
            let mut data = data.lock().unwrap();
            data.clear();
            *room.lock().unwrap() = 100;
        }));
        audit.admin_event(json!({"type": "admin", "n": 3, "pad": "x".repeat(1000)}));
        assert_eq!(audit.lost(), 1);
        *disk.room.lock().unwrap() += 10_000;
        admin_lines(&audit, 4, 1);
        let text = disk.text();
        assert!(!text.contains('\0'), "{text:?}");
        let whole: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(whole.last().unwrap()["n"], 4, "{text:?}");
        assert!(text.lines().count() <= 2, "{text:?}");
    }

    /// perf27b: a file holding a torn record (its cut refused: here, truncated behind the
    /// writer) gets a `\n` first; a batch whose lines then fail part-way is cut back to after
    /// that `\n`, not before it, so the next batch starts on a line of its own rather than
    /// glued to the fragment.
    #[test]
    fn a_batch_failing_after_the_torn_records_newline_keeps_the_newline() {
        use crate::admin::AuditSink;
        let disk = Disk::new(10_000, true);
        let audit = Audit::to_writer(Box::new(disk.clone()));
        admin_lines(&audit, 0, 3);
        let (data, room) = (Arc::clone(&disk.data), Arc::clone(&disk.room));
        *disk.at_len.lock().unwrap() = Some(Box::new(move || {
            data.lock().unwrap().clear();
            *room.lock().unwrap() = 100;
        }));
        audit.admin_event(json!({"type": "admin", "n": 3, "pad": "x".repeat(1000)}));
        assert_eq!(audit.lost(), 1);
        // Room for the `\n` and part of the next batch.
        *disk.room.lock().unwrap() = 1 + 50;
        audit.admin_event(json!({"type": "admin", "n": 4, "pad": "y".repeat(1000)}));
        assert_eq!(audit.lost(), 2);
        *disk.room.lock().unwrap() += 10_000;
        admin_lines(&audit, 5, 1);
        let text = disk.text();
        let last: Value = serde_json::from_str(text.lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(last["n"], 5, "{text:?}");
    }

    /// `audit.on_failure = "closed"`: the state is the last write's. Before any failure nothing is
    /// refused; a failed batch refuses data requests and admin changes; the writer's probe (no
    /// line, no request) resumes service once there is room, and leaves an `audit_gap` record
    /// saying how many records are missing before it.
    #[test]
    fn closed_refuses_while_the_output_fails_and_its_probe_resumes() {
        let disk = Disk::new(0, true);
        let (room, data) = (Arc::clone(&disk.room), Arc::clone(&disk.data));
        let audit = Audit::with_cap(Box::new(disk), PENDING_CAP, AuditOnFailure::Closed);
        assert!(!audit.refusing(), "nothing failed yet");
        assert!(audit.accepts_changes());
        // A pending line is written before an admin change is let through: the state is now's.
        audit.write(json!({"type": "request", "n": 1}));
        assert!(!audit.accepts_changes(), "the pending line failed");
        assert!(audit.refusing());
        assert_eq!(audit.lost(), 1);
        // Still failing: the probes fail and lose nothing.
        std::thread::sleep(PROBE_PERIOD + PROBE_PERIOD / 2);
        assert!(audit.refusing());
        assert_eq!(audit.lost(), 1, "a failed probe is no lost record");
        *room.lock().unwrap() = 1 << 20;
        let deadline = std::time::Instant::now() + 3 * PROBE_PERIOD;
        while audit.refusing() {
            assert!(
                std::time::Instant::now() < deadline,
                "the probe never resumed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(audit.accepts_changes());
        let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 1, "{text}");
        assert_eq!(records[0]["type"], "audit_gap");
        assert_eq!(records[0]["lost"], 1);
        assert_eq!(records[0]["v"], 1);
    }

    /// A line written after a failure clears the state at once (a refused request's own line
    /// tries the output too), without waiting for the probe.
    #[test]
    fn a_write_that_succeeds_ends_the_refusal() {
        let disk = Disk::new(0, true);
        let (room, data) = (Arc::clone(&disk.room), Arc::clone(&disk.data));
        let audit = Audit::with_cap(Box::new(disk), PENDING_CAP, AuditOnFailure::Closed);
        audit.write(json!({"type": "request", "n": 1}));
        audit.sync();
        assert!(audit.refusing());
        *room.lock().unwrap() = 1 << 20;
        audit.write(json!({"type": "request", "n": 2}));
        audit.sync();
        assert!(!audit.refusing());
        // The batch that went out starts with what is missing before it.
        let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{text}");
        assert_eq!(records[0]["type"], "audit_gap");
        assert_eq!(records[0]["lost"], 1);
        assert_eq!(records[1]["n"], 2);
        assert_eq!(audit.lost(), 1);
    }

    /// `audit.on_failure = "open"` (the default): the same failure refuses nothing, and the
    /// writer writes no probe of its own.
    #[test]
    fn open_never_refuses_and_never_probes() {
        let disk = Disk::new(0, true);
        let (room, data) = (Arc::clone(&disk.room), Arc::clone(&disk.data));
        let audit = Audit::with_cap(Box::new(disk), PENDING_CAP, AuditOnFailure::Open);
        audit.write(json!({"type": "request", "n": 1}));
        audit.sync();
        assert_eq!(audit.lost(), 1);
        assert!(!audit.refusing());
        assert!(audit.accepts_changes());
        *room.lock().unwrap() = 1 << 20;
        std::thread::sleep(PROBE_PERIOD + PROBE_PERIOD / 2);
        assert!(data.lock().unwrap().is_empty(), "no probe record");
    }

    /// A reload's new output for the same place starts as failing as the old one was: a closed
    /// gateway does not open at a SIGHUP until a write succeeded (the new writer's probe).
    #[test]
    fn a_reload_carries_the_failure_until_a_write_succeeds() {
        let disk = Disk::new(0, true);
        let old = Audit::with_cap(Box::new(disk), PENDING_CAP, AuditOnFailure::Closed);
        old.write(json!({"type": "request", "n": 1}));
        old.sync();
        assert!(old.refusing());
        let new = Audit::with_cap(
            Box::new(Disk::new(1 << 20, true)),
            PENDING_CAP,
            AuditOnFailure::Closed,
        );
        new.carry_failure_from(&old);
        assert!(new.refusing(), "carried over");
        let deadline = std::time::Instant::now() + 3 * PROBE_PERIOD;
        while new.refusing() {
            assert!(
                std::time::Instant::now() < deadline,
                "the probe never resumed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
