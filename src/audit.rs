//! The audit log: one JSON line per data request and per admin change, to stdout or a file.
//!
//! Invariant: never a secret, a token hash, an `Authorization` value or a request body.
//! The schema is versioned (`"v": 1`); add fields, never rename them.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::AuditOutput;

/// Bytes of lines waiting for the writer. When the output stalls (a full pipe, a slow disk)
/// and this much is waiting, data-request records are dropped and counted rather than
/// blocking the runtime's worker threads, which would freeze every request.
const PENDING_CAP: usize = 16 * 1024 * 1024;

/// How long the writer lets lines gather before it writes them. Request paths never wake the
/// writer (a futex wake-up per request cost more than the line itself); it wakes on this
/// period, or at once when an admin change waits for its line.
const BATCH_PERIOD: Duration = Duration::from_millis(10);

/// The audit log. Request paths only serialise a line and append it to a shared batch; one
/// writer thread owns the output and writes the batch every `BATCH_PERIOD`, so no request
/// waits on disk or stdout. Admin changes wait until their line is flushed (`sync`).
pub struct Audit {
    shared: Option<Arc<Shared>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: std::sync::atomic::AtomicU64,
    /// `PENDING_CAP`, smaller in tests.
    cap: usize,
}

/// What the request paths and the writer thread share.
struct Shared {
    batch: Mutex<Batch>,
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
}

/// One data request, as the audit log records it.
#[derive(Debug, Default, Clone)]
pub struct DataEvent {
    pub request_id: String,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub client: String,
    pub method: String,
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
}

/// A data request's line, serialised straight from borrowed fields (no `Value` tree).
/// The field order is the line's key order.
#[derive(Serialize)]
struct RequestRecord<'a> {
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

impl Audit {
    pub fn open(output: &AuditOutput) -> std::io::Result<Audit> {
        let sink: Box<dyn Write + Send> = match output {
            AuditOutput::Off => {
                return Ok(Audit {
                    shared: None,
                    writer: Mutex::new(None),
                    dropped: Default::default(),
                    cap: PENDING_CAP,
                })
            }
            AuditOutput::Stdout => Box::new(std::io::stdout()),
            AuditOutput::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Box::new(file)
            }
        };
        Ok(Audit::to_writer(sink))
    }

    /// An audit log writing to `sink` from its own thread.
    fn to_writer(sink: Box<dyn Write + Send>) -> Audit {
        Audit::with_cap(sink, PENDING_CAP)
    }

    fn with_cap(sink: Box<dyn Write + Send>, cap: usize) -> Audit {
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch::default()),
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
        }
    }

    /// Data-request records dropped because the output stalled (exported as a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Appends a line to the batch; when the output is stalled and the batch is full, keeps
    /// the line only if `must` (admin changes, which are rare and must be recorded), else
    /// drops and counts it. Returns the batch number the line will go out with.
    fn append(&self, line: &[u8], must: bool) -> Option<u64> {
        let shared = self.shared.as_ref()?;
        let mut batch = lock(&shared.batch);
        if batch.closed {
            drop(batch);
            tracing::error!("The audit writer has stopped; an audit record is lost");
            return None;
        }
        if !must && batch.pending.len() + line.len() > self.cap {
            drop(batch);
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
        Some(batch.taken + 1)
    }

    pub fn write(&self, event: Value) {
        if self.shared.is_some() {
            if let Some(line) = line(event) {
                self.append(&line, false);
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
            batch = match shared.written.wait_timeout(batch, BATCH_PERIOD) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    pub fn data(&self, e: &DataEvent) {
        if self.shared.is_none() {
            return;
        }
        let record = RequestRecord {
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
            at: crate::time::rfc3339(crate::time::now()),
        };
        let mut text = Vec::with_capacity(384);
        if serde_json::to_writer(&mut text, &record).is_err() {
            return;
        }
        let line = finish_line(text);
        self.append(&line, false);
    }
}

impl crate::admin::AuditSink for Audit {
    fn admin_event(&self, event: Value) {
        // An admin change is answered only once its record is out.
        if let Some(line) = line(event) {
            self.append(&line, true);
        }
        self.sync();
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

/// The writer thread: every `BATCH_PERIOD` (or at once when someone waits in `sync`, or on
/// close) takes the pending lines, writes and flushes them outside the lock.
fn write_batches(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut failed = false;
    let mut spare = Vec::new();
    loop {
        let mut batch = lock(&shared.batch);
        if !batch.urgent && !batch.closed {
            batch = match shared.wake.wait_timeout(batch, BATCH_PERIOD) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
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
        let result = out.write_all(&spare).and_then(|()| out.flush());
        match result {
            Ok(()) => failed = false,
            Err(e) => {
                if !failed {
                    tracing::error!(error = %e, "Cannot write the audit log");
                }
                failed = true;
            }
        }
        // Keep the allocation for the next batch, but not a huge one a burst left behind.
        spare.clear();
        if spare.capacity() > PENDING_CAP / 4 {
            spare = Vec::new();
        }
        lock(&shared.batch).flushed = number;
        shared.written.notify_all();
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A sink tests can read while the writer thread owns its clone.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

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

    /// A sink that blocks every write until released (a stalled pipe).
    struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>);

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
        let audit = Audit::with_cap(Box::new(Stalled(Arc::clone(&gate))), 64 * 1024);
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
}
