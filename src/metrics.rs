//! Metrics in the Prometheus text format, served on the admin listener.
//!
//! Invariant: labels have bounded cardinality (actions and outcomes from fixed sets, backend
//! nodes from the config); never token ids, index names or paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::upstream::NodeStatus;

const BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

#[derive(Default)]
pub struct Metrics {
    requests: DashMap<(&'static str, &'static str), AtomicU64>,
    latency_buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    response_bytes: AtomicU64,
}

impl Metrics {
    /// Counts one finished request. `action` is the es action name or `"none"`; `outcome` a
    /// deny/error code or `"allowed"`.
    pub fn record(
        &self,
        action: &'static str,
        outcome: &'static str,
        duration_ms: f64,
        bytes: u64,
    ) {
        self.requests
            .entry((action, outcome))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if duration_ms <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((duration_ms * 1000.0) as u64, Ordering::Relaxed);
        self.response_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn render(&self, nodes: &[NodeStatus], tokens: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP esgate_requests_total Data requests by action and outcome.\n");
        out.push_str("# TYPE esgate_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (e.key().0, e.key().1, e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for (action, outcome, n) in rows {
            let _ = writeln!(
                out,
                "esgate_requests_total{{action=\"{action}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP esgate_request_duration_seconds Time from request head to response end.\n",
        );
        out.push_str("# TYPE esgate_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "esgate_request_duration_seconds_bucket{{le=\"{}\"}} {}",
                b / 1000.0,
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "esgate_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "esgate_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "esgate_request_duration_seconds_count {count}");
        out.push_str("# HELP esgate_response_bytes_total Response body bytes sent to clients.\n");
        out.push_str("# TYPE esgate_response_bytes_total counter\n");
        let _ = writeln!(
            out,
            "esgate_response_bytes_total {}",
            self.response_bytes.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP esgate_backend_up Whether a backend node is currently considered healthy.\n",
        );
        out.push_str("# TYPE esgate_backend_up gauge\n");
        for n in nodes {
            let _ = writeln!(
                out,
                "esgate_backend_up{{node=\"{}\"}} {}",
                n.label,
                u8::from(n.healthy)
            );
        }
        out.push_str(
            "# HELP esgate_backend_connect_failures_total Failed connections per backend node.\n",
        );
        out.push_str("# TYPE esgate_backend_connect_failures_total counter\n");
        for n in nodes {
            let _ = writeln!(
                out,
                "esgate_backend_connect_failures_total{{node=\"{}\"}} {}",
                n.label, n.failures
            );
        }
        out.push_str("# HELP esgate_tokens Tokens in the store.\n# TYPE esgate_tokens gauge\n");
        let _ = writeln!(out, "esgate_tokens {tokens}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record("search", "allowed", 3.0, 100);
        m.record("search", "allowed", 30.0, 50);
        m.record("none", "auth_missing", 0.1, 0);
        let text = m.render(&[], 2);
        assert!(text.contains("esgate_requests_total{action=\"search\",outcome=\"allowed\"} 2"));
        assert!(text.contains("esgate_requests_total{action=\"none\",outcome=\"auth_missing\"} 1"));
        assert!(text.contains("esgate_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("esgate_request_duration_seconds_count 3"));
        assert!(text.contains("esgate_response_bytes_total 150"));
        assert!(text.contains("esgate_tokens 2"));
    }
}
