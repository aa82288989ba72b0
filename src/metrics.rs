//! Metrics, served on the admin listener in the Prometheus text format (0.0.4), encoded by the
//! `prometheus-client` crate.
//!
//! Request-path cost: counters are atomics; the per-token request counter is a `DashMap`
//! looked up by the token id's `&str` (a token's label is allocated once, when it is first
//! counted); histograms take the crate's short lock. Gauges that describe state (backend nodes,
//! the store, expiring tokens) are computed when `/metrics` is scraped.
//!
//! Invariant: labels have bounded cardinality: actions, outcomes and reasons from fixed sets,
//! backend nodes from the config, token ids capped at `[metrics] max_token_series` (the rest
//! under `token_id="other"`); never index names, paths or client input.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::upstream::NodeStatus;

/// The token id label of requests that presented no valid token.
const NO_TOKEN: &str = "none";
/// The token id label past `max_token_series` distinct ids.
const OTHER_TOKENS: &str = "other";

/// Latency bucket bounds (seconds); those beyond the backend timeout are cut and the timeout
/// itself is the last bound.
const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// Why a request was refused before it reached the backend because of a limit: the reasons
/// `esgate_rejected_total{reason}` counts (per-token rate, concurrency and open scroll limits, cost guards,
/// the shared body budget, the authentication failure limiter, the backend connection cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejected {
    RateLimited,
    Concurrency,
    /// A scroll's open over the token's `max_open_scrolls`.
    OpenScrolls,
    /// A point in time's open (or a SQL query, which may open a cursor) over the token's
    /// `max_open_pits`.
    OpenPits,
    /// An async search's submit over the token's `max_running_async_searches`.
    RunningAsyncSearches,
    Guard,
    Busy,
    AuthFailures,
    /// `backend.max_connections_per_node` reached and no connection came free in time.
    BackendConnections,
    /// The token's requests held `backend.max_connections_per_token` of the node's
    /// connections and none came back in time.
    BackendShare,
    /// A connection closed at accept: its address held `listen.max_connections_per_ip`.
    ConnectionsPerIp,
    /// `audit.on_failure = "closed"` and the audit log cannot be written.
    Audit,
    /// An HTTP/2 stream beyond its connection's first found no `listen.max_connections` place.
    Connections,
}

impl Rejected {
    const ALL: [Rejected; 13] = [
        Rejected::RateLimited,
        Rejected::Concurrency,
        Rejected::OpenScrolls,
        Rejected::OpenPits,
        Rejected::RunningAsyncSearches,
        Rejected::Guard,
        Rejected::Busy,
        Rejected::AuthFailures,
        Rejected::BackendConnections,
        Rejected::BackendShare,
        Rejected::ConnectionsPerIp,
        Rejected::Audit,
        Rejected::Connections,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejected::RateLimited => "rate_limited",
            Rejected::Concurrency => "concurrency",
            Rejected::OpenScrolls => "open_scrolls",
            Rejected::OpenPits => "open_pits",
            Rejected::RunningAsyncSearches => "running_async_searches",
            Rejected::Guard => "guard",
            Rejected::Busy => "busy",
            Rejected::AuthFailures => "auth_failures",
            Rejected::BackendConnections => "backend_connections",
            Rejected::BackendShare => "backend_share",
            Rejected::ConnectionsPerIp => "connections_per_ip",
            Rejected::Audit => "audit",
            Rejected::Connections => "connections",
        }
    }
}

/// What one finished data request contributes.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The token id, when a valid token was presented.
    pub token_id: Option<&'a str>,
    /// The es action name, or `"none"`.
    pub action: &'static str,
    /// The audit record's decision: `allow` (`esgate_requests_total`'s `decision`).
    pub allowed: bool,
    /// `"allowed"`, the deny/error code (`ProxyError::code`), or `"client_closed"` (499: the
    /// client went away before the answer).
    pub outcome: &'static str,
    pub status: u16,
    /// From the request head to the end of the answer.
    pub total: Duration,
    /// Time spent waiting for the backend's answer head (zero when nothing was forwarded).
    pub backend: Option<Duration>,
    /// esgate's own time: the request's path through esgate up to the answer head, less the
    /// backend's wait (none without an answer head: a 499).
    pub own: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// State read when `/metrics` is scraped.
pub struct Scrape<'a> {
    pub nodes: &'a [NodeStatus],
    pub tokens: usize,
    pub tokens_expiring_7d: usize,
    pub store_bytes: Option<u64>,
    pub audit_dropped: u64,
    /// Audit records lost because the audit output failed (`Audit::lost`).
    pub audit_lost: u64,
    /// `audit.on_failure = "closed"` and the audit output cannot be written: data requests
    /// and admin changes are refused (`Audit::refusing`).
    pub audit_refusing: bool,
    /// The cluster store's state (`[store] kind = "elasticsearch"`), `None` for the file store.
    pub cluster: Option<ClusterStore>,
    /// Whether a token id still exists: the series of deleted tokens are dropped at scrape,
    /// so their places under `max_token_series` go to new tokens.
    pub token_exists: &'a dyn Fn(&str) -> bool,
}

/// What a replica knows of the token store in the cluster, at scrape time.
#[derive(Clone, Debug, Default)]
pub struct ClusterStore {
    /// Why the cluster does not answer (the replica serves its last good copy); `None`: it does.
    pub down: Option<String>,
    pub polls: u64,
    pub poll_failures: u64,
    pub records_applied: u64,
    pub records_skipped: u64,
    pub conflicts: u64,
    pub reloads: u64,
    pub records_recovered: u64,
    pub tombstones_purged: u64,
    /// The highest change sequence this replica has seen.
    pub sequence: u64,
}

pub struct Metrics {
    requests: Arc<TokenRequests>,
    decisions: Family<[(&'static str, &'static str); 2], Counter>,
    /// The `decisions` counters by (action, outcome), looked up without the family's SipHash
    /// and lock: each is the family's own counter (a `Counter` is a shared handle).
    decision_counters: DashMap<(&'static str, &'static str), Counter, crate::FastHash>,
    rejected: Family<[(&'static str, &'static str); 1], Counter>,
    duration: Histogram,
    own_duration: Histogram,
    backend_duration: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
    /// Failed `accept` calls (out of descriptors, out of memory), every listener.
    accept_errors: Counter,
    /// The data connections each worker thread serves (`server::workers`), once serving.
    worker_connections: Mutex<Option<Arc<[AtomicUsize]>>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(
            Duration::from_secs(60),
            crate::config::raw::DEFAULT_MAX_TOKEN_SERIES as usize,
        )
    }
}

impl Metrics {
    /// `backend_timeout` bounds the latency buckets; `max_token_series` caps the token ids.
    pub fn new(backend_timeout: Duration, max_token_series: usize) -> Metrics {
        let limit = backend_timeout.as_secs_f64();
        let buckets = || {
            BUCKETS
                .iter()
                .copied()
                .filter(move |b| *b < limit)
                .chain((limit > 0.0).then_some(limit))
        };
        let rejected: Family<[(&'static str, &'static str); 1], Counter> = Family::default();
        // Every reason is exposed from the start (at 0), so a rate over it is never empty.
        for why in Rejected::ALL {
            drop(rejected.get_or_create(&[("reason", why.label())]));
        }
        Metrics {
            requests: Arc::new(TokenRequests {
                max: max_token_series,
                by_token: DashMap::default(),
                other: Counts::default(),
                none: Counts::default(),
            }),
            decisions: Family::default(),
            decision_counters: DashMap::default(),
            rejected,
            duration: Histogram::new(buckets()),
            own_duration: Histogram::new(buckets()),
            backend_duration: Histogram::new(buckets()),
            request_bytes: Counter::default(),
            response_bytes: Counter::default(),
            accept_errors: Counter::default(),
            worker_connections: Mutex::new(None),
        }
    }

    /// Where the workers count their open data connections (one counter per worker).
    pub fn count_worker_connections(&self, counts: Arc<[AtomicUsize]>) {
        *self
            .worker_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(counts);
    }

    /// The open data connections per worker, now.
    fn worker_connections(&self) -> Vec<usize> {
        let counts = self
            .worker_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        counts.map_or_else(Vec::new, |c| {
            c.iter().map(|n| n.load(Ordering::Relaxed)).collect()
        })
    }

    /// Counts one finished data request.
    pub fn record(&self, f: &Finished<'_>) {
        self.requests.counts(f.token_id).add(f.allowed, f.status);
        self.decision(f.action, f.outcome).inc();
        self.duration.observe(f.total.as_secs_f64());
        if let Some(own) = f.own {
            self.own_duration.observe(own.as_secs_f64());
        }
        if let Some(b) = f.backend {
            self.backend_duration.observe(b.as_secs_f64());
        }
        self.request_bytes.inc_by(f.bytes_in);
        self.response_bytes.inc_by(f.bytes_out);
    }

    /// The `decisions` counter of an action and outcome (created in the family once).
    fn decision(&self, action: &'static str, outcome: &'static str) -> Counter {
        if let Some(c) = self.decision_counters.get(&(action, outcome)) {
            return c.clone();
        }
        let counter = self
            .decisions
            .get_or_create(&[("action", action), ("outcome", outcome)])
            .clone();
        self.decision_counters
            .insert((action, outcome), counter.clone());
        counter
    }

    /// Counts a failed `accept` (`server`'s accept loops).
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// Counts a request refused by a limit (rate, concurrency, cost guard, body budget).
    pub fn rejected(&self, why: Rejected) {
        self.rejected
            .get_or_create(&[("reason", why.label())])
            .inc();
    }

    /// The exposition: Prometheus text format 0.0.4.
    pub fn render(&self, state: &Scrape<'_>) -> String {
        self.requests
            .by_token
            .retain(|id, _| (state.token_exists)(id));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(&self.requests)));
        registry.register(
            "esgate_decisions",
            "Data requests by action and outcome (allowed, or the refusal's reason class)",
            self.decisions.clone(),
        );
        registry.register(
            "esgate_rejected",
            "Requests refused by a limit, by reason (rate_limited, concurrency, guard, busy, auth_failures, backend_connections, backend_share, connections_per_ip)",
            self.rejected.clone(),
        );
        registry.register(
            "esgate_request_duration_seconds",
            "Time from request head to response end",
            self.duration.clone(),
        );
        registry.register(
            "esgate_own_duration_seconds",
            "esgate's own time per request: its path from request head to answer head, less the backend's wait",
            self.own_duration.clone(),
        );
        registry.register(
            "esgate_backend_duration_seconds",
            "Time the backend took to answer a forwarded request's head",
            self.backend_duration.clone(),
        );
        registry.register(
            "esgate_request_bytes",
            "Request body bytes received from clients",
            self.request_bytes.clone(),
        );
        registry.register(
            "esgate_response_bytes",
            "Response body bytes sent to clients",
            self.response_bytes.clone(),
        );
        registry.register(
            "esgate_accept_errors",
            "Connections a listener could not accept (out of file descriptors, out of memory); they wait in the listen queue",
            self.accept_errors.clone(),
        );
        registry.register(
            "esgate_build",
            "esgate's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let mut rows = StateRows::from(state);
        rows.worker_connections = self.worker_connections();
        registry.register_collector(Box::new(rows));
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// `esgate_requests_total{token_id,decision,status}`, where `status` is the class (`2xx`...).
#[derive(Debug)]
struct TokenRequests {
    max: usize,
    by_token: DashMap<Box<str>, Counts, crate::FastHash>,
    other: Counts,
    none: Counts,
}

/// Requests per decision (allow, deny) and status class (1xx to 5xx).
#[derive(Debug, Default)]
struct Counts([AtomicU64; 10]);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Counts {
    fn add(&self, allowed: bool, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[usize::from(!allowed) * 5 + class].fetch_add(1, Ordering::Relaxed);
    }
}

impl TokenRequests {
    /// The counters for `token_id`: its own while fewer than `max` ids are counted, else
    /// `other`. The lookup does not allocate; a new id's label is allocated once.
    fn counts(&self, token_id: Option<&str>) -> CountsRef<'_> {
        let Some(id) = token_id else {
            return CountsRef::Shared(&self.none);
        };
        if let Some(r) = self.by_token.get(id) {
            return CountsRef::Token(r);
        }
        // Two new ids racing past the cap may both get in: the cap is approximate by at most
        // the number of worker threads.
        if self.by_token.len() >= self.max {
            return CountsRef::Shared(&self.other);
        }
        CountsRef::Token(self.by_token.entry(id.into()).or_default().downgrade())
    }
}

/// A reference to one token's counters, or to a shared row.
enum CountsRef<'a> {
    Token(dashmap::mapref::one::Ref<'a, Box<str>, Counts>),
    Shared(&'a Counts),
}

impl CountsRef<'_> {
    fn add(&self, allowed: bool, status: u16) {
        match self {
            CountsRef::Token(r) => r.value().add(allowed, status),
            CountsRef::Shared(c) => c.add(allowed, status),
        }
    }
}

impl Collector for TokenRequests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut rows: Vec<(String, usize, u64)> = Vec::new();
        let mut push = |id: &str, c: &Counts| {
            for (i, n) in c.0.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    rows.push((id.to_owned(), i, n));
                }
            }
        };
        for e in self.by_token.iter() {
            push(e.key(), e.value());
        }
        push(OTHER_TOKENS, &self.other);
        push(NO_TOKEN, &self.none);
        rows.sort();
        let mut metric = encoder.encode_descriptor(
            "esgate_requests",
            "Data requests by token id (capped; the rest under \"other\", none without a valid token), decision and status class",
            None,
            MetricType::Counter,
        )?;
        for (id, i, n) in rows {
            let labels = [
                ("token_id", id.as_str()),
                ("decision", if i < 5 { "allow" } else { "deny" }),
                ("status", CLASSES[i % 5]),
            ];
            ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The gauges computed at scrape time.
#[derive(Debug)]
struct StateRows {
    nodes: Vec<(String, bool, u64, usize, usize)>,
    tokens: usize,
    tokens_expiring_7d: usize,
    store_bytes: Option<u64>,
    audit_dropped: u64,
    audit_lost: u64,
    audit_refusing: bool,
    cluster: Option<ClusterStore>,
    worker_connections: Vec<usize>,
}

impl From<&Scrape<'_>> for StateRows {
    fn from(s: &Scrape<'_>) -> StateRows {
        StateRows {
            nodes: s
                .nodes
                .iter()
                .map(|n| (n.label.clone(), n.healthy, n.failures, n.open, n.idle))
                .collect(),
            tokens: s.tokens,
            tokens_expiring_7d: s.tokens_expiring_7d,
            store_bytes: s.store_bytes,
            audit_dropped: s.audit_dropped,
            audit_lost: s.audit_lost,
            audit_refusing: s.audit_refusing,
            cluster: s.cluster.clone(),
            worker_connections: Vec::new(),
        }
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for StateRows {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut up = encoder.encode_descriptor(
            "esgate_backend_up",
            "Whether a backend node is currently considered healthy",
            None,
            MetricType::Gauge,
        )?;
        for (node, healthy, ..) in &self.nodes {
            ConstGauge::new(i64::from(*healthy))
                .encode(up.encode_family(&[("node", node.as_str())])?)?;
        }
        let mut failures = encoder.encode_descriptor(
            "esgate_backend_connect_failures",
            "Failed connections per backend node",
            None,
            MetricType::Counter,
        )?;
        for (node, _, n, ..) in &self.nodes {
            ConstCounter::new(*n).encode(failures.encode_family(&[("node", node.as_str())])?)?;
        }
        let mut connections = encoder.encode_descriptor(
            "esgate_backend_connections",
            "Connections open to a backend node, in use (answers under way, connecting) or idle; at most backend.max_connections_per_node in all",
            None,
            MetricType::Gauge,
        )?;
        for (node, _, _, open, idle) in &self.nodes {
            let in_use = open.saturating_sub(*idle);
            for (state, n) in [("in_use", in_use), ("idle", *idle)] {
                ConstGauge::new(saturating(n as u64)).encode(
                    connections.encode_family(&[("node", node.as_str()), ("state", state)])?,
                )?;
            }
        }
        gauge(
            &mut encoder,
            "esgate_tokens",
            "Tokens in the store",
            saturating(self.tokens as u64),
        )?;
        gauge(
            &mut encoder,
            "esgate_tokens_expiring_7d",
            "Unexpired tokens whose expiry is within 7 days",
            saturating(self.tokens_expiring_7d as u64),
        )?;
        if let Some(bytes) = self.store_bytes {
            gauge(
                &mut encoder,
                "esgate_store_bytes",
                "Size of the store's files on disk",
                saturating(bytes),
            )?;
        }
        let dropped = encoder.encode_descriptor(
            "esgate_audit_dropped",
            "Request audit records dropped while the audit output stalled",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.audit_dropped).encode(dropped)?;
        let lost = encoder.encode_descriptor(
            "esgate_audit_lost",
            "Audit records (requests and admin changes) lost because the audit output could not be written (a full disk, an I/O error); requests go on",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.audit_lost).encode(lost)?;
        gauge(
            &mut encoder,
            "esgate_audit_refusing",
            "1 while audit.on_failure = \"closed\" refuses data requests and admin changes because the audit output cannot be written, else 0",
            i64::from(self.audit_refusing),
        )?;
        if !self.worker_connections.is_empty() {
            let mut open = encoder.encode_descriptor(
                "esgate_data_connections",
                "Data connections open, by worker thread (listen.workers)",
                None,
                MetricType::Gauge,
            )?;
            for (worker, n) in self.worker_connections.iter().enumerate() {
                let worker = worker.to_string();
                ConstGauge::new(saturating(*n as u64))
                    .encode(open.encode_family(&[("worker", worker.as_str())])?)?;
            }
        }
        if let Some(c) = &self.cluster {
            let mut up = encoder.encode_descriptor(
                "esgate_store_up",
                "Whether the token store cluster answers (0: serving from the last good copy; reason says why)",
                None,
                MetricType::Gauge,
            )?;
            let reason = c.down.as_deref().unwrap_or("");
            ConstGauge::new(i64::from(c.down.is_none()))
                .encode(up.encode_family(&[("reason", reason)])?)?;
            for (name, help, n) in [
                (
                    "esgate_store_polls",
                    "Change polls of the token store cluster",
                    c.polls,
                ),
                (
                    "esgate_store_poll_failures",
                    "Change polls that failed (cluster unreachable or erroring)",
                    c.poll_failures,
                ),
                (
                    "esgate_store_records_applied",
                    "Records changed by other replicas and picked up",
                    c.records_applied,
                ),
                (
                    "esgate_store_records_skipped",
                    "Store documents skipped as corrupt",
                    c.records_skipped,
                ),
                (
                    "esgate_store_conflicts",
                    "Writes that met a concurrent change through another replica (then re-planned)",
                    c.conflicts,
                ),
                (
                    "esgate_store_reloads",
                    "Whole-store reads after no successful poll for half of store.tombstone_retention",
                    c.reloads,
                ),
                (
                    "esgate_store_records_recovered",
                    "Records the periodic sweep found that the change poll had missed (written long after their claim)",
                    c.records_recovered,
                ),
                (
                    "esgate_store_tombstones_purged",
                    "Tombstones of deleted records purged after store.tombstone_retention",
                    c.tombstones_purged,
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(n).encode(metric)?;
            }
            gauge(
                &mut encoder,
                "esgate_store_sequence",
                "The highest store change sequence this replica has seen",
                saturating(c.sequence),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished<'a>(token_id: Option<&'a str>, outcome: &'static str, status: u16) -> Finished<'a> {
        Finished {
            token_id,
            action: "search",
            allowed: outcome == "allowed",
            outcome,
            status,
            total: Duration::from_millis(30),
            backend: Some(Duration::from_millis(20)),
            own: Some(Duration::from_millis(3)),
            bytes_in: 10,
            bytes_out: 100,
        }
    }

    fn scrape() -> Scrape<'static> {
        Scrape {
            nodes: &[],
            tokens: 2,
            tokens_expiring_7d: 1,
            store_bytes: Some(4096),
            audit_dropped: 0,
            audit_lost: 3,
            audit_refusing: false,
            cluster: None,
            token_exists: &|_| true,
        }
    }

    #[test]
    fn deleted_tokens_give_their_places_to_new_ones() {
        let m = Metrics::new(Duration::from_secs(30), 1);
        m.record(&finished(Some("tok_gone"), "allowed", 200));
        m.record(&finished(Some("tok_new"), "allowed", 200));
        let gone = Scrape {
            token_exists: &|id| id != "tok_gone",
            ..scrape()
        };
        let text = m.render(&gone);
        assert!(!text.contains("tok_gone"), "{text}");
        m.record(&finished(Some("tok_new"), "allowed", 200));
        let text = m.render(&gone);
        assert!(
            text.contains(
                r#"esgate_requests_total{token_id="tok_new",decision="allow",status="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"esgate_requests_total{token_id="other",decision="allow",status="2xx"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn token_ids_past_the_cap_count_as_other() {
        let m = Metrics::new(Duration::from_secs(30), 2);
        for id in ["tok_a", "tok_b", "tok_c", "tok_a"] {
            m.record(&finished(Some(id), "allowed", 200));
        }
        m.record(&finished(None, "auth_missing", 401));
        m.record(&finished(Some("tok_d"), "forbidden", 403));
        let text = m.render(&scrape());
        for line in [
            r#"esgate_requests_total{token_id="tok_a",decision="allow",status="2xx"} 2"#,
            r#"esgate_requests_total{token_id="tok_b",decision="allow",status="2xx"} 1"#,
            r#"esgate_requests_total{token_id="other",decision="allow",status="2xx"} 1"#,
            r#"esgate_requests_total{token_id="other",decision="deny",status="4xx"} 1"#,
            r#"esgate_requests_total{token_id="none",decision="deny",status="4xx"} 1"#,
            r#"esgate_decisions_total{action="search",outcome="allowed"} 4"#,
            "esgate_request_duration_seconds_count 6",
            "esgate_backend_duration_seconds_count 6",
            "esgate_response_bytes_total 600",
            "esgate_request_bytes_total 60",
            "esgate_tokens 2",
            "esgate_tokens_expiring_7d 1",
            "esgate_store_bytes 4096",
            "esgate_audit_dropped_total 0",
            "esgate_audit_lost_total 3",
            "esgate_accept_errors_total 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("tok_c"), "{text}");
        assert!(text.contains(r#"esgate_build_info{version=""#), "{text}");
    }

    #[test]
    fn latency_buckets_end_at_the_backend_timeout() {
        let m = Metrics::new(Duration::from_secs(30), 10);
        m.record(&finished(Some("t"), "allowed", 200));
        let text = m.render(&scrape());
        assert!(
            text.contains(r#"esgate_backend_duration_seconds_bucket{le="30"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"le="60""#), "{text}");
        assert!(
            text.contains(r#"esgate_backend_duration_seconds_bucket{le="0.01"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let m = Metrics::default();
        m.rejected(Rejected::RateLimited);
        m.rejected(Rejected::RateLimited);
        m.rejected(Rejected::Guard);
        let text = m.render(&scrape());
        assert!(
            text.contains(r#"esgate_rejected_total{reason="rate_limited"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"esgate_rejected_total{reason="guard"} 1"#),
            "{text}"
        );
    }
}
