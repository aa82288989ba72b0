//! The audit log: one JSON line per data request and per admin change, to stdout or a file.
//!
//! Invariant: never a secret, a token hash, an `Authorization` value or a request body.
//! The schema is versioned (`"v": 1`); add fields, never rename them.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::config::AuditOutput;

pub struct Audit {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
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
        let sink: Option<Box<dyn Write + Send>> = match output {
            AuditOutput::Off => None,
            AuditOutput::Stdout => Some(Box::new(std::io::stdout())),
            AuditOutput::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Some(Box::new(std::io::LineWriter::new(file)))
            }
        };
        Ok(Audit {
            sink: sink.map(Mutex::new),
        })
    }

    pub fn write(&self, mut event: Value) {
        let Some(sink) = &self.sink else { return };
        if let Some(obj) = event.as_object_mut() {
            obj.insert("v".into(), json!(1));
            obj.entry("at")
                .or_insert_with(|| json!(crate::time::rfc3339(crate::time::now())));
        }
        let Ok(text) = serde_json::to_string(&event) else {
            return;
        };
        // Paths and reasons echo client input; a secret pasted there must not be recorded.
        let mut line = crate::auth::secret::redact(&text).into_owned().into_bytes();
        line.push(b'\n');
        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::error!(error = %e, "Cannot write the audit log");
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
        self.write(event);
    }
}
