//! The audit log: one JSON line per data request and per admin change, to stdout or a file.
//!
//! Invariant: never a secret, a token hash, an `Authorization` value or a request body.
//! The schema is versioned (`"v": 1`); add fields, never rename them.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::config::AuditOutput;

/// Lines waiting for the writer thread. When the output stalls (a full pipe, a slow disk) and
/// the queue is full, data-request records are dropped and counted rather than blocking the
/// runtime's worker threads, which would freeze every request.
const QUEUE: usize = 64 * 1024;

/// The audit log. Request paths only serialise and enqueue a line; one writer thread owns the
/// output and flushes whenever the queue runs dry, so no request waits on disk or stdout.
/// Admin changes wait until their line is flushed (`sync`).
pub struct Audit {
    queue: Option<SyncSender<Message>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: std::sync::atomic::AtomicU64,
}

enum Message {
    Line(Vec<u8>),
    /// Flush everything queued before, then answer.
    Sync(SyncSender<()>),
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
}

impl Audit {
    pub fn open(output: &AuditOutput) -> std::io::Result<Audit> {
        let sink: Box<dyn Write + Send> = match output {
            AuditOutput::Off => {
                return Ok(Audit {
                    queue: None,
                    writer: Mutex::new(None),
                    dropped: Default::default(),
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
        let (tx, rx) = sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("esgate-audit".into())
            .spawn(move || write_lines(rx, std::io::BufWriter::with_capacity(64 * 1024, sink)))
            .ok();
        Audit {
            queue: writer.as_ref().map(|_| tx),
            writer: Mutex::new(writer),
            dropped: Default::default(),
        }
    }

    /// Data-request records dropped because the output stalled (exported as a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues a record; when the queue is full, waits for room only if `wait` (admin changes,
    /// which are rare and must be recorded), else drops and counts it.
    fn enqueue(&self, event: Value, wait: bool) {
        let Some(queue) = &self.queue else { return };
        let Some(line) = line(event) else { return };
        match queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) if wait => {
                let _ = queue.send(m);
            }
            Err(TrySendError::Full(_)) => {
                let n = self
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(10_000) {
                    tracing::error!(
                        dropped = n + 1,
                        "The audit output is stalled; request records are being dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("The audit writer has stopped; an audit record is lost");
            }
        }
    }

    pub fn write(&self, event: Value) {
        self.enqueue(event, false);
    }

    /// Waits until every line queued so far is written and flushed.
    pub fn sync(&self) {
        let Some(queue) = &self.queue else { return };
        let (tx, rx) = sync_channel(1);
        if queue.send(Message::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    pub fn data(&self, e: &DataEvent) {
        self.write(json!({
            "type": "request",
            "request_id": e.request_id,
            "token_id": e.token_id,
            "token_name": e.token_name,
            "client": e.client,
            "method": e.method,
            "path": e.path,
            "action": e.action,
            "indices": e.indices,
            "status": e.status,
            "decision": e.decision,
            "reason": e.reason,
            "bytes": e.bytes,
            "duration_ms": (e.duration_ms * 1000.0).round() / 1000.0,
        }));
    }
}

impl crate::admin::AuditSink for Audit {
    fn admin_event(&self, event: Value) {
        // An admin change is answered only once its record is out.
        self.enqueue(event, true);
        self.sync();
    }
}

/// One JSON line: the record with its schema version and time, secret-like text redacted
/// (paths and reasons echo client input; a secret pasted there must not be recorded).
fn line(mut event: Value) -> Option<Vec<u8>> {
    if let Some(obj) = event.as_object_mut() {
        obj.insert("v".into(), json!(1));
        obj.entry("at")
            .or_insert_with(|| json!(crate::time::rfc3339(crate::time::now())));
    }
    let text = serde_json::to_string(&event).ok()?;
    let mut line = crate::auth::secret::redact(&text).into_owned().into_bytes();
    line.push(b'\n');
    Some(line)
}

impl Drop for Audit {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it, flush and exit.
        self.queue = None;
        let writer = self.writer.get_mut().map(Option::take).unwrap_or(None);
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

/// The writer thread: writes lines as they come, flushes whenever the queue is empty.
fn write_lines(rx: Receiver<Message>, mut out: impl Write) {
    let mut failed = false;
    let report = |e: std::io::Error, failed: &mut bool| {
        if !*failed {
            tracing::error!(error = %e, "Cannot write the audit log");
        }
        *failed = true;
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => match out.write_all(&line) {
                    Ok(()) => failed = false,
                    Err(e) => report(e, &mut failed),
                },
                Message::Sync(done) => {
                    if let Err(e) = out.flush() {
                        report(e, &mut failed);
                    }
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            report(e, &mut failed);
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A sink tests can read while the writer thread owns its clone.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(shared: &Shared) -> Vec<Value> {
        String::from_utf8(shared.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_written_in_order_and_sync_waits_for_them() {
        let shared = Shared::default();
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
        let shared = Shared::default();
        let audit = Audit::to_writer(Box::new(shared.clone()));
        audit.admin_event(json!({"type": "admin", "action": "token.create"}));
        assert_eq!(lines(&shared)[0]["action"], "token.create");
        audit.write(json!({"type": "request", "path": "/esg_abc123/_search"}));
        drop(audit);
        let got = lines(&shared);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["path"], "/esg_[redacted]/_search");
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
        let audit = Audit::to_writer(Box::new(Stalled(Arc::clone(&gate))));
        let started = std::time::Instant::now();
        // More than the queue plus what the writer buffers before its output blocks.
        for i in 0..2 * QUEUE {
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
        assert!(dropped >= (QUEUE / 2) as u64, "dropped {dropped}");
    }
}
