//! The cluster token store (`[store] kind = "elasticsearch"`, issue #12): tokens, library
//! filters, IP filters, last-used times and the id-sealing key as documents of one hidden index
//! in the backend cluster (or another one), shared by any number of esgate replicas.
//!
//! Layout: one index `<store.index>` (hidden, one shard, `dynamic: strict`) whose documents are
//! `{"kind", "key", "seq", "deleted"?, "record"?}`: `key` is the document id
//! (`token:<id>`, `filter:<id>`, `ip_filter:<name>`, `last_used:<token id>`, `counter`,
//! `id_key`), `record` the same serde record the file store persists (`model::Token`, ...; an
//! object mapped `enabled: false`, so fields added to the records flow through without a
//! mapping change), `deleted` a tombstone (deletes must be seen by the change poll).
//!
//! Invariants:
//! - Every write claims the next number of the `counter` document with optimistic concurrency
//!   (`if_seq_no`/`if_primary_term`), after catching up with the cluster, and writes its records
//!   with that `seq`, each with optimistic concurrency on the version this replica last saw: a
//!   concurrent change through another replica makes the write fail with a conflict and the
//!   store re-plans on the latest state (`Store::update`), so no acknowledged change is lost and
//!   cross-record rules (filter in use, IP filter in use) are checked on the latest state.
//! - Writes use `refresh=true`: once acknowledged they are visible to every replica's poll.
//! - The change poll costs the same whatever the number of tokens: when nothing changed it is one
//!   GET of the `counter` document; when the counter moved, one search for records whose `seq`
//!   is above the highest seen. Every `WINDOW_EVERY` polls the settle window (`seq` above the
//!   floor, last-used times excepted) is re-read beside the poll and outside the store's
//!   writer lock ([`ClusterStore::window_read`]: its cost follows the number of records in the
//!   window, seconds for a bulk of many records under one `seq`, so neither the poll nor an
//!   admin write waits for it), so a write whose records became visible late or in parts is
//!   still picked up; the floor passes a `seq` only after a window re-read that started
//!   [`SETTLE`] after this replica saw it claimed, once what it found is applied. A `seq` passed
//!   without a record read under it (a write landing after a later one's) is asked for at
//!   every poll until read or behind the floor (`Sync::unseen`). A record is
//!   applied only when its version (`_primary_term`, `_seq_no`) is newer than the one held.
//! - A write is acknowledged only once its records landed within `LATE` (half of `SETTLE`)
//!   of its claim, on the writer's monotonic and wall clocks: a later one (the writer paused
//!   between claim and write, a slow network or store) is stamped again under a freshly
//!   claimed `seq`, each record on the version just written. So every replica in touch reads
//!   an acknowledged change within about a poll interval. Ordering the poll by the index's own
//!   `_seq_no` would not need the writer's clocks, but neither test backend can search or sort
//!   on `_seq_no` (osmem answers a `range` on it with no hits, silently).
//! - Every [`SWEEP_EVERY`] poll intervals (2 minutes at the default) and once [`SETTLE`]
//!   after each load ([`ClusterStore::sweep_due`]), a replica reads every
//!   record but last-used times again, beside the poll: records that landed behind the floor
//!   anyway (a writer paused with its clocks, as a stopped VM may be; a write that landed
//!   after its request timed out, or whose writer was killed before stamping it again) reach
//!   every replica in touch within that time; a tombstone also within a purge round
//!   ([`Purged::newer`], a few times per purge hold), before the replicas that held it may
//!   purge it. Its cost follows the number of records (a
//!   page per 1000); only what it finds newer is applied, under the writer lock, and
//!   nothing a round read before a load that came since ([`Found`]: the load read the whole
//!   store afresh, and a record read before it may be a token whose delete and tombstone purge
//!   came in between).
//! - A deleted token's `last_used` document is deleted by the purge after its tombstone; one
//!   left (that second request failed, or a last-used write landed after the purge read it)
//!   is deleted by the sweep that follows ([`ClusterStore::purge_orphans`]), only once the
//!   cluster answers the token's document is not found, and only at the version read before
//!   that answer: a live token's last-used time is never deleted, and one written since the
//!   read (the token written again) stays.
//! - The rounds that page through many records beside the poll (the window re-read, the sweep,
//!   the purge's read) read by one scroll in index order or, when the cluster says it cannot
//!   open it (its scroll contexts, shared by every client of a node, used up by others; rel25;
//!   any other failure fails the read, rel26), in `key` order, each page a search from the
//!   last key read on (`ClusterStore::each_paged`: it reads every record that matches at its
//!   start and still does when it reaches its key, and misses one that comes to match behind
//!   it, as a scroll's snapshot does), one page request at a time (`paging`), so the poll's and the admin writes' requests never queue behind several of
//!   them; a window re-read holds it for its whole read, the sweep and the purge for each
//!   page, so a re-read waits for one of their pages at most, not for a whole store read.
//!   A replica whose window re-reads or purge rounds fail while its polls succeed (a scroll
//!   that fails after its first page, a proxy refusing their searches) misses records that
//!   landed in parts or behind its floor, tombstones the other replicas purge included; half
//!   the retention of such failures counts as out of touch (`Sync::window_failing`).
//! - The full load (start, `store export`) is one such read; it reads the counter first and
//!   takes no `seq` above it as seen, so a record written during the read under a later
//!   claim (which a key walk reads or not, by where its key falls) is read by the next polls
//!   either way.
//! - A document esgate did not write (unknown fields or kind, id not matching its key) or a
//!   mapping that is not esgate's stops the start; a record that fails to decode is logged and
//!   skipped, the others load.
//! - Nothing secret is logged (records hold secret hashes only; errors never quote records).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use super::model::{IpFilter, LibraryFilter, Link, Token, UnixTime};
use super::{Change, StoreError};
use crate::upstream::Upstream;

/// How long after a `seq` was seen a poll still re-reads from below it (writes claimed before
/// and indexed after a poll).
pub const SETTLE: Duration = Duration::from_secs(5);
/// Every this many polls, the settle window is re-read (writes indexed late or partly), beside
/// the poll ([`ClusterStore::window_due`]).
const WINDOW_EVERY: u32 = 4;
/// Every this many poll intervals (2 minutes at the default `store.poll_interval`), a replica
/// reads every record again, last-used times excepted ([`ClusterStore::sweep_read`]): records
/// that landed behind the floor, which the change poll never reads.
pub const SWEEP_EVERY: u32 = 240;
/// Skipped `seq`s a replica keeps track of at most (`Sync::unseen`).
const MAX_UNSEEN: usize = 256;
/// At start, how many change sequences before the last one loaded are re-read in the window.
const IN_FLIGHT_SEQS: u64 = 4;
/// The mapping version esgate writes in `_meta.esgate_store`.
const MAPPING_VERSION: u64 = 1;
/// Records per search page (load and poll) and per bulk request (import).
const PAGE: usize = 1000;
/// Largest answer esgate reads from the store cluster.
const MAX_ANSWER: usize = 256 * 1024 * 1024;
/// How long a write waits for records of a claimed `seq` it has not seen yet.
const IN_FLIGHT_WAIT: Duration = Duration::from_millis(300);
/// The longest a replica holds a tombstone (monotonic) before it may purge it, however long
/// the retention: a replica restarted within it purges nothing it loaded until then.
const MAX_PURGE_HOLD: Duration = Duration::from_secs(3600);
/// How long a store request may take; beyond it the cluster is unavailable (admin writes 503).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A write whose records came back this long (or longer) after its claim was sent, on either
/// clock, is stamped again under a fresh `seq` before it is acknowledged. Polls re-read a
/// claimed `seq` for [`SETTLE`] after they first saw it claimed (see `Sync::pass`), so
/// records that landed later than that after their claim (a writer paused between its claim
/// and its write, a slow network or store) may never be read by other replicas. Half of it:
/// margin for clocks that run at slightly different rates.
const LATE: Duration = Duration::from_millis(2500);
/// How many times in a row a late write is stamped again before it fails as unavailable.
const MAX_RESTAMPS: u32 = 3;

/// A document's version as the cluster reports it; newer compares greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    primary_term: u64,
    seq_no: u64,
}

/// A change sequence claimed on the counter document, and when the claim was sent.
pub struct Claim {
    seq: u64,
    at: Clocks,
}

/// The `counter` document as last read.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    value: u64,
    version: Version,
}

#[derive(Default)]
struct Sync {
    /// Versions of every record document seen (tombstones included), by document id.
    versions: HashMap<String, Version>,
    /// Highest `seq` of any record seen.
    max_seq: u64,
    /// `(when, max_seq)` after each poll, oldest first, for the poll floor.
    seen: VecDeque<(Instant, u64)>,
    /// The settle window `floor < seq <= max_seq` is re-read every `WINDOW_EVERY` polls,
    /// beside them ([`ClusterStore::window_read`]); polls ask only for `seq > max_seq` (and
    /// the unseen `seq`s).
    floor: u64,
    /// Polls since the window was last re-read.
    since_window: u32,
    /// Loads so far: a window re-read that a load (which sets the floor and every version
    /// afresh) overtook applies nothing.
    loads: u64,
    /// Held versions forgotten so far (a tombstone purged, or found gone by a write): a
    /// round's finds read before a forget are applied after it only for records still held,
    /// or tombstones ([`ClusterStore::accept_found`]).
    forgets: u64,
    /// `seq`s in the window that `max_seq` passed without this replica reading a record under
    /// them (claimed by a write still in flight, whose records may land after a later write's,
    /// or records overwritten since): every poll also asks for records under them, so records
    /// landing after a later write's are read within a poll, not at the next window re-read.
    unseen: std::collections::BTreeSet<u64>,
    /// The highest counter value read: no record's `seq` may raise `max_seq` above it (a
    /// document with a forged, huge `seq` would otherwise hide every later change).
    counter_seen: u64,
    /// A counter value above every record seen, and since when (an abandoned claim).
    abandoned: Option<(u64, Instant)>,
    /// When the last successful load or poll started, on both clocks (see [`out_of_touch`]).
    synced: Option<Clocks>,
    /// When a sweep is due after a load (see [`ClusterStore::sweep_due`]).
    sweep_after_load: Option<Instant>,
    /// When the first of the settle window re-reads that failed since the last one succeeded
    /// (or the last load) started, on both clocks; likewise `purge_failing` for the purge
    /// rounds. They page through many records beside the poll: a replica whose polls
    /// succeed while those fail (a scroll that fails after its first page, a proxy that
    /// refuses their searches; until rel25 a scroll the cluster did not open, out of scroll
    /// contexts) reads neither the records that landed in parts or behind its floor
    /// nor the tombstones among them, which the other replicas purge after their hold. Half
    /// the retention of failing rounds counts as out of touch (see [`out_of_touch`]): the
    /// replica reads the whole store again, and until it can, its `/ready` says so.
    window_failing: Option<Clocks>,
    purge_failing: Option<Clocks>,
    /// Document ids whose held version is a tombstone, and since when this replica holds it
    /// (monotonic): a replica may purge it, after which a write that names the held version
    /// meets a conflict (see [`ClusterStore::commit`]); this replica purges only tombstones it
    /// has held for [`ClusterStore::purge_hold`].
    tombstones: HashMap<String, Instant>,
}

impl Sync {
    /// A record under `seq` was read, or written by this replica: `max_seq` rises to it, and
    /// the `seq`s it passes on the way (at most [`MAX_UNSEEN`], the highest) are unseen until
    /// read or behind the floor.
    fn saw(&mut self, seq: u64) {
        if seq > self.max_seq {
            let skipped = (self.max_seq + 1..seq).rev().take(MAX_UNSEEN);
            self.unseen.extend(skipped);
            self.max_seq = seq;
        } else {
            self.unseen.remove(&seq);
        }
    }

    /// Records the highest `seq` seen at `now` (after a poll), keeping the newest observation
    /// at least [`SETTLE`] old and every later one.
    fn observe(&mut self, now: Instant) {
        let max = self.max_seq;
        self.seen.push_back((now, max));
        while self
            .seen
            .get(1)
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= SETTLE)
        {
            self.seen.pop_front();
        }
    }

    /// When a window re-read starts at `started`: the highest `seq` seen at least [`SETTLE`]
    /// before, where the floor moves once the re-read succeeded (see [`Sync::pass`]). Taken at
    /// the start, since the polls that go on beside the re-read drop older observations.
    fn settled(&self, started: Instant) -> Option<u64> {
        self.seen
            .iter()
            .rev()
            .find(|(t, _)| started.saturating_duration_since(*t) >= SETTLE)
            .map(|&(_, m)| m)
    }

    /// Forgets the version held of `id` (its tombstone is gone from the store).
    fn forget(&mut self, id: &str) {
        self.tombstones.remove(id);
        self.versions.remove(id);
        self.forgets += 1;
    }

    /// After a window re-read succeeded (it read every record above the floor, and what it
    /// found is applied): the floor moves to what was `settled` when it started. So the floor
    /// passes a `seq` only after a re-read that started `SETTLE` after this replica first saw
    /// that `seq` (or a higher one) claimed, whatever the poll interval and however long the
    /// re-read took: records visible within `SETTLE` of their claim are read (writers see to
    /// it, see `LATE`).
    fn pass(&mut self, settled: Option<u64>) {
        if let Some(m) = settled {
            self.floor = self.floor.max(m);
        }
        self.unseen = self.unseen.split_off(&(self.floor + 1));
    }
}

/// The rounds beside the poll whose failures count towards being out of touch
/// (`Sync::window_failing`).
#[derive(Clone, Copy)]
enum Round {
    Window,
    Purge,
}

/// Counters for `/metrics` and `/ready`.
#[derive(Default)]
pub struct ClusterStats {
    pub polls: AtomicU64,
    pub poll_failures: AtomicU64,
    pub records_applied: AtomicU64,
    pub records_skipped: AtomicU64,
    pub conflicts: AtomicU64,
    /// Whole-store reads after being out of touch for half the tombstone retention.
    pub reloads: AtomicU64,
    /// Records a sweep found that the change poll had missed (they landed behind its floor).
    pub records_recovered: AtomicU64,
    pub tombstones_purged: AtomicU64,
}

pub struct ClusterStore {
    http: Upstream,
    authorization: Option<http::HeaderValue>,
    index: String,
    /// `store.tombstone_retention`.
    retention: Duration,
    sync: Mutex<Sync>,
    /// `None` while the cluster answers; else why it does not.
    down: Mutex<Option<String>>,
    /// Taken by the rounds that page through many records beside the poll (the window re-read,
    /// the sweep, the purge's read), so one page request at a time: each keeps the store
    /// cluster busy for seconds with many records, and together they slowed the poll's and the
    /// admin writes' requests to a second and more on a small cluster (noida). The window
    /// re-read holds it for its whole read; the sweep and the purge's read for each page, so a
    /// re-read (every `WINDOW_EVERY` polls: records visible in parts, a revocation among them)
    /// waits for one of their pages, not for a whole read of the store. The load and the poll
    /// never take it.
    paging: tokio::sync::Mutex<()>,
    pub stats: ClusterStats,
}

/// What a store document decodes to.
// Decoded once per document and consumed at once: boxing the change would only add an
// allocation per record.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    Change(Change),
    Counter,
    IdKey,
}

/// A store document that is not esgate's.
struct Foreign(String);

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// The mapping esgate creates; a different one is refused at start.
fn mapping() -> Value {
    json!({
        "dynamic": "strict",
        "_meta": {"esgate_store": MAPPING_VERSION},
        "properties": {
            "kind": {"type": "keyword"},
            "key": {"type": "keyword"},
            "seq": {"type": "long"},
            "deleted": {"type": "boolean"},
            "record": {"type": "object", "enabled": false}
        }
    })
}

/// Whether a mapping the cluster reports is esgate's (backends differ in key order and in
/// spelling `enabled` before or after `type`, so compare parsed values).
fn mapping_is_ours(found: &Value) -> bool {
    let want = mapping();
    found.get("dynamic").and_then(Value::as_str) == Some("strict")
        && found.pointer("/_meta/esgate_store").and_then(Value::as_u64) == Some(MAPPING_VERSION)
        && found.get("properties") == want.get("properties")
}

fn doc_id(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

fn enc(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Decodes one search hit or GET answer (`_id`, `_source`). `Err(Foreign)`: not esgate's;
/// `Ok(None)`: esgate's layout but a record that does not decode (corrupt: skipped).
fn decode(id: &str, source: &Value) -> Result<Option<Decoded>, Foreign> {
    let obj = source
        .as_object()
        .ok_or_else(|| Foreign(format!("document '{id}' is not an object")))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "kind" | "key" | "seq" | "deleted" | "record"))
    {
        return Err(Foreign(format!(
            "document '{id}' has a field '{k}' esgate does not write"
        )));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let key = obj.get("key").and_then(Value::as_str).unwrap_or("");
    if key != id || obj.get("seq").and_then(Value::as_u64).is_none() {
        return Err(Foreign(format!(
            "document '{id}' lacks esgate's key and sequence number"
        )));
    }
    let deleted = obj.get("deleted").and_then(Value::as_bool).unwrap_or(false);
    let record = obj.get("record").unwrap_or(&Value::Null);
    let name = match (kind, id.split_once(':')) {
        ("counter", None) if id == "counter" => return Ok(Some(Decoded::Counter)),
        ("id_key", None) if id == "id_key" => return Ok(Some(Decoded::IdKey)),
        (k, Some((prefix, name))) if k == prefix => name.to_owned(),
        _ => {
            return Err(Foreign(format!(
                "document '{id}' has a kind esgate does not know"
            )))
        }
    };
    let change = match (kind, deleted) {
        ("token", true) => Change::DeleteToken { id: name },
        ("filter", true) => Change::DeleteFilter { id: name },
        ("ip_filter", true) => Change::DeleteIpFilter { name },
        ("link", true) => Change::DeleteLink { id: name },
        ("last_used", true) => return Ok(None),
        ("token", false) => match <Token as serde::Deserialize>::deserialize(record) {
            Ok(token) if token.id == name => Change::PutToken { token },
            _ => return Ok(None),
        },
        ("filter", false) => match <LibraryFilter as serde::Deserialize>::deserialize(record) {
            Ok(filter) if filter.id == name => Change::PutFilter { filter },
            _ => return Ok(None),
        },
        ("ip_filter", false) => match <IpFilter as serde::Deserialize>::deserialize(record) {
            Ok(ip_filter) if ip_filter.name == name => Change::PutIpFilter { ip_filter },
            _ => return Ok(None),
        },
        ("link", false) => match <Link as serde::Deserialize>::deserialize(record) {
            Ok(link) if link.id == name => Change::PutLink { link },
            _ => return Ok(None),
        },
        ("last_used", false) => match record.get("at").and_then(Value::as_i64) {
            Some(t) => Change::LastUsed {
                times: vec![(name, t)],
            },
            None => return Ok(None),
        },
        _ => {
            return Err(Foreign(format!(
                "document '{id}' has a kind esgate does not know"
            )))
        }
    };
    Ok(Some(Decoded::Change(change)))
}

/// What a replica holds for a record document that does not decode: nothing, as a load skips
/// it (a token absent, a library filter or IP filter gone, so the tokens naming it are refused
/// as dangling, a link closed).
fn unreadable(id: &str) -> Option<Change> {
    let (kind, name) = id.split_once(':')?;
    let name = name.to_owned();
    match kind {
        "token" => Some(Change::DeleteToken { id: name }),
        "filter" => Some(Change::DeleteFilter { id: name }),
        "ip_filter" => Some(Change::DeleteIpFilter { name }),
        "link" => Some(Change::DeleteLink { id: name }),
        _ => None,
    }
}

/// The documents one change writes: `(doc id, source)`. A tombstone records when it was
/// written (`record.deleted_at`, Unix seconds: `now`), for the purge; older esgate versions
/// read a tombstone without looking at its record.
fn documents(change: &Change, seq: u64, now: UnixTime) -> Result<Vec<(String, Value)>, StoreError> {
    let put = |kind: &str, name: &str, record: Value| {
        let id = doc_id(kind, name);
        (
            id.clone(),
            json!({"kind": kind, "key": id, "seq": seq, "record": record}),
        )
    };
    let tomb = |kind: &str, name: &str| {
        let id = doc_id(kind, name);
        (
            id.clone(),
            json!({"kind": kind, "key": id, "seq": seq, "deleted": true, "record": {"deleted_at": now}}),
        )
    };
    let ser = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| StoreError::Unavailable(format!("cannot encode a record: {e}")))
    };
    Ok(match change {
        Change::PutToken { token } => {
            vec![put("token", &token.id, ser(serde_json::to_value(token))?)]
        }
        Change::DeleteToken { id } => vec![tomb("token", id)],
        Change::PutLink { link } => {
            vec![put("link", &link.id, ser(serde_json::to_value(link))?)]
        }
        Change::DeleteLink { id } => vec![tomb("link", id)],
        Change::PutFilter { filter } => {
            vec![put(
                "filter",
                &filter.id,
                ser(serde_json::to_value(filter))?,
            )]
        }
        Change::DeleteFilter { id } => vec![tomb("filter", id)],
        Change::PutIpFilter { ip_filter } => vec![put(
            "ip_filter",
            &ip_filter.name,
            ser(serde_json::to_value(ip_filter))?,
        )],
        Change::DeleteIpFilter { name } => vec![tomb("ip_filter", name)],
        Change::LastUsed { times } => times
            .iter()
            .map(|(id, t)| put("last_used", id, json!({ "at": t })))
            .collect(),
    })
}

/// The hits of a search answer, moved out of it.
fn take_hits(answer: &mut Value, what: &str) -> Result<Vec<Value>, StoreError> {
    // A partial page (a shard failed, or the search timed out) may lack records: a round that
    // took it for whole could move the floor past a record it never read (a revocation).
    let failed = answer
        .pointer("/_shards/failed")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 || answer.get("timed_out") == Some(&Value::Bool(true)) {
        return Err(StoreError::Unavailable(format!(
            "the store cluster answered {what} with a partial page (failed shards or timed out)"
        )));
    }
    Ok(match answer.pointer_mut("/hits/hits") {
        Some(Value::Array(hits)) => std::mem::take(hits),
        _ => vec![],
    })
}

/// The start of the reason Elasticsearch and OpenSearch give when a node has no scroll
/// context left for a new scroll (`search.max_open_scroll_context`, 500 a node for every
/// client together): `SearchService::createAndPutReaderContext` in both.
const NO_SCROLL_CONTEXT: &str = "Trying to create too many scroll contexts";

/// Whether a scroll's opening answer says the cluster cannot open a scroll context, and
/// nothing else: the one failure a read by key may go round ([`ClusterStore::each_scrolled`]).
/// Each shard that cannot open one fails with the same reason, whose type and status vary:
/// `too_many_scroll_contexts_exception` and 429 on Elasticsearch 8.12 and later,
/// `exception` and 500 before; `rejected_execution_exception` and 429 on OpenSearch (the type
/// of its search queue's rejections too: the reason tells them apart). All shards failing, the
/// answer is an error (`search_phase_execution_exception`) naming them in `root_cause` and
/// `failed_shards`; some of them, a page naming them in `_shards.failures`. A loaded cluster's
/// refusals (a full search queue, a circuit breaker), timeouts and other errors are not this:
/// a read by key would only add to the load (each of its pages sorts every match again).
fn out_of_scroll_contexts(answer: &Value) -> bool {
    let says = |cause: &Value| {
        cause.get("type").and_then(Value::as_str) == Some("too_many_scroll_contexts_exception")
            || cause
                .get("reason")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with(NO_SCROLL_CONTEXT))
    };
    let listed = |list: Option<&Value>, reason: bool| {
        list.and_then(Value::as_array).is_some_and(|items| {
            items.iter().any(|item| {
                if reason {
                    item.get("reason").is_some_and(says)
                } else {
                    says(item)
                }
            })
        })
    };
    let error = answer.get("error");
    error.is_some_and(says)
        || listed(error.and_then(|e| e.get("root_cause")), false)
        || listed(error.and_then(|e| e.get("failed_shards")), true)
        || listed(answer.pointer("/_shards/failures"), true)
}

/// A bulk item's `result` (the object under its action): the version it wrote when it
/// succeeded (2xx with a version), else its status (0 when it has none).
fn bulk_outcome(result: Option<&Value>) -> Result<Version, u64> {
    let status = result
        .and_then(|r| r.get("status"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match result.and_then(hit_version) {
        Some(v) if (200..300).contains(&status) => Ok(v),
        _ => Err(status),
    }
}

fn hit_version(hit: &Value) -> Option<Version> {
    Some(Version {
        primary_term: hit.get("_primary_term")?.as_u64()?,
        seq_no: hit.get("_seq_no")?.as_u64()?,
    })
}

/// What a load found: the changes that rebuild the state, and the records skipped as corrupt.
pub struct Loaded {
    pub changes: Vec<Change>,
    pub skipped: Vec<String>,
}

/// What a poll (or a catch-up's polls) brought: when the store was read whole, the changes
/// that rebuild the state (`reloaded`, replacing it), then the changes to apply on top.
#[derive(Default)]
pub struct Polled {
    pub reloaded: Option<Vec<Change>>,
    pub changes: Vec<Change>,
}

impl Polled {
    /// Records brought, reloaded or changed.
    pub fn len(&self) -> usize {
        self.reloaded.as_ref().map_or(0, Vec::len) + self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `next`, polled after this one, on top of it (a reload replaces everything before it).
    fn then(&mut self, next: Polled) {
        if next.reloaded.is_some() {
            *self = next;
        } else {
            self.changes.extend(next.changes);
        }
    }
}

/// A moment on the wall clock and on the monotonic clock.
#[derive(Clone, Copy, Debug)]
struct Clocks {
    wall: SystemTime,
    mono: Instant,
}

impl Clocks {
    fn now() -> Clocks {
        Clocks {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }
}

/// Whether a replica whose last successful load or poll started at `synced` must read the whole
/// store at `now`: a tombstone is purged a full retention after it was written, so a replica
/// that looked within half of it has seen every tombstone still missing from its state (the
/// other half is margin for clocks that disagree between replicas); it never looked; or the
/// wall clock went back (then nothing tells how long it was). Half the retention on either
/// clock counts: a paused machine's monotonic clock may stand still while the world went on
/// (the wall clock tells), and a wall clock stepped back by less than the time away (a clock
/// that ran fast, corrected while out of touch) hides part of it (the monotonic clock tells).
fn out_of_touch(synced: Option<Clocks>, now: Clocks, retention: Duration) -> bool {
    match synced {
        None => true,
        Some(t) => {
            now.wall
                .duration_since(t.wall)
                .map_or(true, |gone| gone > retention / 2)
                || now.mono.saturating_duration_since(t.mono) > retention / 2
        }
    }
}

/// Whether records written under a claim sent at `claimed` and acknowledged at `now` landed
/// `LATE`: on either clock (a paused machine's monotonic clock may stand still while the
/// world went on; a wall clock may be stepped), or when the wall clock went back (nothing then
/// tells how long it took). A false alarm costs one more write.
fn late(claimed: Clocks, now: Clocks) -> bool {
    now.wall
        .duration_since(claimed.wall)
        .map_or(true, |d| d >= LATE)
        || now.mono.saturating_duration_since(claimed.mono) >= LATE
}

/// How long a replica holds a tombstone before it may purge it (see
/// `ClusterStore::purge_hold`).
fn purge_hold(retention: Duration) -> Duration {
    (retention / 2).clamp(2 * SETTLE, MAX_PURGE_HOLD)
}

/// How often a replica purges tombstones (`Store::purge_tombstones`): a few times per
/// retention, 1 s to 1 h. A round also applies the tombstones newer than held
/// ([`Purged::newer`]): a tombstone that landed behind a replica's floor reaches it through a
/// purge round or a sweep, and the replicas that did see it (its writer first) purge it once
/// they held it for the purge hold; one of the two must come before, or the replica that
/// missed it keeps the deleted token for good (a short retention made the hold 10 s to 4 min,
/// shorter than the sweep's 2 to 4 minutes).
pub fn purge_every(retention: Duration) -> Duration {
    (retention / 8).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// What a sweep read found ([`ClusterStore::sweep_read`]), or the tombstones a purge round
/// read that are newer than held ([`Purged::newer`]): to apply with
/// [`ClusterStore::sweep_apply`].
pub struct Found {
    /// `Sync::loads` when the read started: finds read before a load are not applied after
    /// it (the load read the whole store afresh; a record read before it could be one whose
    /// delete, and then its tombstone's purge, came since, and would bring a revoked token
    /// back).
    loads: u64,
    /// `Sync::forgets` when the read started: a record read before a purge forgot the
    /// version held of it (a token's tombstone, polled after the read, held for the purge
    /// hold and purged) may be that token's record from before its delete; it is no longer
    /// older than anything held, so applying it would bring the revoked token back for good.
    forgets: u64,
    /// The records newer than held.
    hits: Vec<Value>,
}

impl Found {
    /// A round starting now: nothing found yet, the load and forget counts it started at.
    fn starting(s: &Sync) -> Found {
        Found {
            loads: s.loads,
            forgets: s.forgets,
            hits: vec![],
        }
    }

    /// Whether it found records to apply.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }
}

/// A round's find not applied: read before a held version was forgotten (see
/// [`Found::forgets`]).
struct Stale;

/// What a settle window re-read found ([`ClusterStore::window_read`]).
pub struct WindowRead {
    /// The highest `seq` seen `SETTLE` before the re-read started, where the floor moves once
    /// it is applied.
    settled: Option<u64>,
    /// The records newer than held, with the counts the re-read started at.
    found: Found,
}

impl WindowRead {
    /// Whether it found records to apply.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

/// What a purge round did.
pub struct Purged {
    /// Tombstones deleted (older than the retention).
    pub purged: usize,
    /// Tombstones written before deletion times were recorded, as the deletes to write again
    /// (with a time, so they are purged one retention from now); at most one page a round.
    /// With the version read (see [`ClusterStore::holds_other_version`]).
    pub unstamped: Vec<(String, Version, Change)>,
    /// Tombstones newer than the versions this replica holds (landed behind its poll's floor),
    /// to apply with [`ClusterStore::sweep_apply`]: a round reads every tombstone a few times
    /// per purge hold, so a replica that missed one reads it before the replicas that held it
    /// may purge it (the periodic sweep may come later: every 240 poll intervals).
    pub newer: Found,
}

impl ClusterStore {
    /// A client for the store cluster: `store` is how it is reached (`Config::store_backend`:
    /// the `[backend]` settings with the store's own nodes, credential and roots where set),
    /// with esgate's own short timeouts.
    pub fn new(store: &crate::config::Backend, index: &str, retention: Duration) -> ClusterStore {
        let mut config = store.clone();
        config.request_timeout = config.request_timeout.min(REQUEST_TIMEOUT);
        config.connect_timeout = config.connect_timeout.min(REQUEST_TIMEOUT);
        config.unhealthy_cooldown = config.unhealthy_cooldown.min(Duration::from_secs(1));
        ClusterStore {
            // The store's requests come from the main thread (worker 0).
            http: Upstream::new(&config, 1),
            authorization: store.authorization.as_ref().map(|a| a.0.clone()),
            index: index.to_owned(),
            retention,
            sync: Mutex::new(Sync::default()),
            down: Mutex::new(None),
            paging: tokio::sync::Mutex::new(()),
            stats: ClusterStats::default(),
        }
    }

    pub fn index(&self) -> &str {
        &self.index
    }

    /// `None` while the cluster answers; else the reason it does not.
    pub fn down_reason(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_down(&self, reason: Option<String>) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match (&*d, &reason) {
            (None, Some(r)) => {
                tracing::warn!(reason = %r, "Token store cluster unavailable: serving from the last good copy; admin writes are refused")
            }
            (Some(_), None) => tracing::info!("Token store cluster available again"),
            _ => {}
        }
        *d = reason;
    }

    fn sync(&self) -> std::sync::MutexGuard<'_, Sync> {
        self.sync.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<(u16, Value), StoreError> {
        let (status, value) = self.answer(method, path, body).await?;
        if status >= 500 {
            return Err(StoreError::Unavailable(format!(
                "the store cluster answered status {status}"
            )));
        }
        let value = value
            .ok_or_else(|| StoreError::Unavailable("the store cluster answered non-JSON".into()))?;
        Ok((status, value))
    }

    /// A request's answer whatever its status: its body as JSON (`Null` when empty, `None`
    /// when not JSON). An error only when no answer came (unreachable, timed out).
    async fn answer(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<(u16, Option<Value>), StoreError> {
        let (status, bytes) = self
            .http
            .own_request(method, path, self.authorization.as_ref(), body, MAX_ANSWER)
            .await
            .map_err(|e| unavailable("the store cluster", e))?;
        let value = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        Ok((status, value))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), StoreError> {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        self.request(method, path, Some(("application/json", bytes)))
            .await
    }

    fn unexpected(what: &str, status: u16) -> StoreError {
        StoreError::Unavailable(format!(
            "the store cluster answered {what} with status {status}"
        ))
    }

    /// Creates the index (hidden, strict mapping) and the counter document when missing, and
    /// refuses an index whose mapping is not esgate's. `create`: false for tools that must not
    /// create anything (export).
    pub async fn prepare_index(&self, create: bool) -> Result<(), StoreError> {
        let path = format!("/{}", enc(&self.index));
        let (status, found) = self.request(Method::GET, &path, None).await?;
        match status {
            200 => {
                // An alias or another name may answer: take the one entry.
                let entry = found.as_object().and_then(|o| {
                    if o.len() == 1 {
                        o.values().next()
                    } else {
                        None
                    }
                });
                let concrete = found
                    .as_object()
                    .is_some_and(|o| o.contains_key(&self.index));
                let m = entry.and_then(|e| e.get("mappings"));
                if !concrete || !m.is_some_and(mapping_is_ours) {
                    return Err(StoreError::Foreign(format!(
                        "the index '{}' exists but is not an esgate token store (its mapping differs from the one esgate creates); choose another store.index or remove it",
                        self.index
                    )));
                }
            }
            404 if create => {
                let body = json!({
                    "settings": {"index": {"hidden": true, "number_of_shards": 1, "auto_expand_replicas": "0-1"}},
                    "mappings": mapping(),
                });
                let (status, answer) = self.json(Method::PUT, &path, &body).await?;
                let raced = answer.pointer("/error/type").and_then(Value::as_str)
                    == Some("resource_already_exists_exception");
                if !(200..300).contains(&status) && !raced {
                    return Err(Self::unexpected("the index creation", status));
                }
                if raced {
                    return Box::pin(self.prepare_index(false)).await;
                }
                tracing::info!(index = %self.index, "Created the token store index");
            }
            404 => {
                return Err(StoreError::Foreign(format!(
                    "the token store index '{}' does not exist",
                    self.index
                )))
            }
            s => return Err(Self::unexpected("the index lookup", s)),
        }
        if create {
            let body = json!({"kind": "counter", "key": "counter", "seq": 0});
            let path = format!(
                "/{}/_doc/counter?op_type=create&refresh=true",
                enc(&self.index)
            );
            let (status, _) = self.json(Method::PUT, &path, &body).await?;
            if !(200..300).contains(&status) && status != 409 {
                return Err(Self::unexpected("the counter creation", status));
            }
        }
        Ok(())
    }

    /// The shared id-sealing key: read, or created once (the first replica wins a race).
    pub async fn id_key(&self) -> Result<[u8; 32], StoreError> {
        let path = format!("/{}/_doc/id_key", enc(&self.index));
        for _ in 0..3 {
            let (status, doc) = self.request(Method::GET, &path, None).await?;
            if status == 200 && doc.get("found") == Some(&Value::Bool(true)) {
                let hex = doc
                    .pointer("/_source/record/key")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let mut key = [0u8; 32];
                if hex.len() != 64 {
                    return Err(StoreError::Foreign(
                        "the store's id_key document is not a 32-byte key".into(),
                    ));
                }
                for (i, b) in key.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| {
                        StoreError::Foreign(
                            "the store's id_key document is not a 32-byte key".into(),
                        )
                    })?;
                }
                return Ok(key);
            }
            let key: [u8; 32] = rand::random();
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let body = json!({"kind": "id_key", "key": "id_key", "seq": 0, "record": {"key": hex}});
            let create = format!("{path}?op_type=create&refresh=true");
            let (status, _) = self.json(Method::PUT, &create, &body).await?;
            if (200..300).contains(&status) {
                return Ok(key);
            }
            if status != 409 {
                return Err(Self::unexpected("the id key creation", status));
            }
        }
        Err(StoreError::Unavailable(
            "the store's id key could not be read".into(),
        ))
    }

    /// Every record `query` matches, in `(seq, key)` order, handed to `f` one search page
    /// (`PAGE` hits, `search_after`) at a time.
    async fn each_record(
        &self,
        query: &Value,
        mut f: impl FnMut(&Value),
    ) -> Result<(), StoreError> {
        let path = format!("/{}/_search", enc(&self.index));
        let mut after = None;
        loop {
            let mut body = json!({
                "query": query,
                "sort": [{"seq": "asc"}, {"key": "asc"}],
                "size": PAGE,
                "seq_no_primary_term": true,
                "track_total_hits": false,
            });
            if let Some(a) = after.take() {
                body["search_after"] = a;
            }
            let (status, mut answer) = self.json(Method::POST, &path, &body).await?;
            if status != 200 {
                return Err(Self::unexpected("a store search", status));
            }
            let hits = take_hits(&mut answer, "a store search")?;
            hits.iter().for_each(&mut f);
            if hits.len() < PAGE {
                return Ok(());
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
            if after.is_none() {
                return Ok(());
            }
        }
    }

    /// Every record `query` matches, in index order, handed to `f` one scroll page (`PAGE`
    /// hits) at a time; an error from `f` stops the scroll. One scroll costs the backend the
    /// same per page whatever the number of matches, where `search_after` on a sort sorts every
    /// match again for each page (20,000 records of one `seq`: 2.8 s against 0.7 s on osmem):
    /// the load and the rounds that page through many records beside the poll (the window
    /// re-read, the sweep, the purge) read this way; `what` names the read in errors. With
    /// `paged`, each page is read under the paging lock (`ClusterStore::paging`).
    ///
    /// A scroll the cluster says it cannot open (its scroll contexts, 500 a node for every
    /// client together, used up by others: [`out_of_scroll_contexts`]) is read by
    /// [`ClusterStore::each_paged`] instead, which holds nothing between pages (rel25: every
    /// load and round failed then, and the replica fell out of touch). Any other failure to
    /// open it (a timeout, a 5xx, a full search queue) fails the read, as before rel25
    /// (rel26: a key walk on a loaded cluster doubled the work, each of its pages sorting
    /// every match again). A scroll that fails after its first page fails the read too (its
    /// pages were handed out).
    async fn each_scrolled(
        &self,
        query: &Value,
        what: &str,
        paged: bool,
        mut f: impl FnMut(&Value) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut scroll_id: Option<String> = None;
        // Whether the cluster said it cannot open the scroll (out of scroll contexts).
        let mut no_context = false;
        let result = async {
            loop {
                let _page = if paged {
                    Some(self.paging.lock().await)
                } else {
                    None
                };
                let (status, mut answer) = match &scroll_id {
                    None => {
                        let body = json!({
                            "query": query,
                            "sort": ["_doc"],
                            "size": PAGE,
                            "seq_no_primary_term": true,
                        });
                        let path = format!("/{}/_search?scroll=1m", enc(&self.index));
                        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                        let (status, answer) = self
                            .answer(Method::POST, &path, Some(("application/json", bytes)))
                            .await?;
                        // Read whatever the status: Elasticsearch before 8.12 says it with a
                        // 500. Its scroll id, when some shards opened one, is cleared below.
                        if let Some(answer) = &answer {
                            if status == 200 {
                                scroll_id = answer
                                    .get("_scroll_id")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned);
                            }
                            if out_of_scroll_contexts(answer) {
                                no_context = true;
                                return Err(StoreError::Unavailable(format!(
                                    "the store cluster opened no scroll for {what}: too many scroll contexts"
                                )));
                            }
                        }
                        if status >= 500 {
                            return Err(StoreError::Unavailable(format!(
                                "the store cluster answered status {status}"
                            )));
                        }
                        let answer = answer.ok_or_else(|| {
                            StoreError::Unavailable("the store cluster answered non-JSON".into())
                        })?;
                        (status, answer)
                    }
                    Some(id) => {
                        let body = json!({"scroll": "1m", "scroll_id": id});
                        self.json(Method::POST, "/_search/scroll", &body).await?
                    }
                };
                if status != 200 {
                    return Err(Self::unexpected(what, status));
                }
                scroll_id = answer
                    .get("_scroll_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let hits = take_hits(&mut answer, what)?;
                if hits.is_empty() {
                    return Ok(());
                }
                hits.iter().try_for_each(&mut f)?;
                if scroll_id.is_none() {
                    // A full page without a scroll id to go on: the rest would go unread.
                    if hits.len() >= PAGE {
                        return Err(StoreError::Unavailable(format!(
                            "the store cluster answered {what} without a scroll id"
                        )));
                    }
                    return Ok(());
                }
            }
        }
        .await;
        if let Some(id) = scroll_id {
            let _ = self
                .json(
                    Method::DELETE,
                    "/_search/scroll",
                    &json!({ "scroll_id": id }),
                )
                .await;
        }
        match result {
            Err(e) if no_context => {
                tracing::debug!(read = what, error = %e, "The store cluster did not open a scroll; paging by key instead");
                self.each_paged(query, what, paged, f).await
            }
            result => result,
        }
    }

    /// Every document `query` matches that has a `key`, in `key` order, handed to `f` one
    /// search page (`PAGE` hits) at a time; an error from `f` stops the walk; `what` and
    /// `paged` as for [`ClusterStore::each_scrolled`], which reads this way when the cluster
    /// says it cannot open its scroll (rel25). Each page is a plain search from the last `key`
    /// read on, which holds nothing between pages (no scroll, no point in time). `key` is esgate's
    /// document id (`decode` refuses a document whose `key` is not its id), so it is unique
    /// and never changes: a document that matches when the walk starts and still does when
    /// the walk reaches its key is read, once, as it is then; one that comes to match behind
    /// the walk is missed, as a scroll's snapshot misses it; one deleted (purged) before the
    /// walk reaches it is missed, where a scroll's snapshot still had it. Pages start at the
    /// last key read (`gte`), the ids already read under it skipped, so a document esgate did
    /// not write that repeats a key hides nothing (`search_after` skips every document under
    /// the last sort value); a full page of nothing new (more than `PAGE` of them under one
    /// key) fails the walk. Documents without a `key` are not esgate's and not read (the load
    /// looks for them apart). Each page sorts the matches again, where a scroll's page costs
    /// the same whatever their number: on osmem, 20,000 records took about 20 times a
    /// scroll's time (BENCHMARKS.md, session 25, rel25), so it is the fallback only.
    async fn each_paged(
        &self,
        query: &Value,
        what: &str,
        paged: bool,
        mut f: impl FnMut(&Value) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let path = format!("/{}/_search", enc(&self.index));
        // The last key read, and the ids read under it.
        let mut last: Option<(String, std::collections::HashSet<String>)> = None;
        loop {
            let _page = if paged {
                Some(self.paging.lock().await)
            } else {
                None
            };
            let mut filter = vec![query.clone(), json!({"exists": {"field": "key"}})];
            if let Some((key, _)) = &last {
                filter.push(json!({"range": {"key": {"gte": key}}}));
            }
            let body = json!({
                "query": {"bool": {"filter": filter}},
                "sort": [{"key": "asc"}],
                "size": PAGE,
                "seq_no_primary_term": true,
                "track_total_hits": false,
            });
            let (status, mut answer) = self.json(Method::POST, &path, &body).await?;
            if status != 200 {
                return Err(Self::unexpected(what, status));
            }
            let hits = take_hits(&mut answer, what)?;
            let mut new = 0;
            for hit in &hits {
                let key = hit.pointer("/sort/0").and_then(Value::as_str);
                let (Some(key), Some(id)) = (key, hit.get("_id").and_then(Value::as_str)) else {
                    return Err(StoreError::Unavailable(format!(
                        "the store cluster answered {what} without a document's id or key"
                    )));
                };
                match &mut last {
                    Some((at, ids)) if at == key => {
                        if !ids.insert(id.to_owned()) {
                            continue;
                        }
                    }
                    _ => last = Some((key.to_owned(), [id.to_owned()].into())),
                }
                new += 1;
                f(hit)?;
            }
            if hits.len() < PAGE {
                return Ok(());
            }
            if new == 0 {
                return Err(StoreError::Foreign(format!(
                    "the store cluster answered {what} with more than {PAGE} documents under one key (esgate writes one)"
                )));
            }
        }
    }

    /// Reads the whole store (at start, and for `store export`). A foreign document stops the
    /// load; a corrupt record is skipped and named in [`Loaded::skipped`].
    pub async fn load(&self) -> Result<Loaded, StoreError> {
        let started = Clocks::now();
        let counter = self.counter().await?;
        let mut changes = vec![];
        let mut skipped = vec![];
        let mut versions = HashMap::new();
        let mut tombstones = vec![];
        let mut max_seq = 0;
        // A document without a key is not esgate's, and the walk does not reach it.
        let keyless = json!({
            "query": {"bool": {"must_not": [{"exists": {"field": "key"}}]}},
            "size": 1,
        });
        let path = format!("/{}/_search", enc(&self.index));
        let (status, mut answer) = self.json(Method::POST, &path, &keyless).await?;
        if status != 200 {
            return Err(Self::unexpected("the store load", status));
        }
        if let Some(hit) = take_hits(&mut answer, "the store load")?.first() {
            let id = hit.get("_id").and_then(Value::as_str).unwrap_or("");
            let reason = match decode(id, hit.get("_source").unwrap_or(&Value::Null)) {
                Err(Foreign(reason)) => reason,
                _ => format!("document '{id}' lacks esgate's key"),
            };
            return Err(StoreError::Foreign(format!(
                "the index '{}' holds a document esgate did not write ({reason}); nothing was loaded",
                self.index
            )));
        }
        let all = json!({"match_all": {}});
        self.each_scrolled(&all, "the store load", false, |hit| {
            let id = hit.get("_id").and_then(Value::as_str).unwrap_or("");
            let source = hit.get("_source").unwrap_or(&Value::Null);
            match decode(id, source) {
                Err(Foreign(reason)) => {
                    return Err(StoreError::Foreign(format!(
                        "the index '{}' holds a document esgate did not write ({reason}); nothing was loaded",
                        self.index
                    )))
                }
                Ok(None) => skipped.push(id.to_owned()),
                Ok(Some(Decoded::Change(c))) => {
                    if let Some(v) = hit_version(hit) {
                        versions.insert(id.to_owned(), v);
                    }
                    if c.is_delete() {
                        tombstones.push(id.to_owned());
                    }
                    max_seq = max_seq.max(source.get("seq").and_then(Value::as_u64).unwrap_or(0));
                    changes.push(c);
                }
                Ok(Some(Decoded::Counter | Decoded::IdKey)) => {}
            }
            Ok(())
        })
        .await?;
        for id in &skipped {
            // A link's id is the credential of its URL: named by its reference (attack25b).
            let document = crate::kibana::redact_link_ids(id);
            tracing::error!(index = %self.index, %document, "Token store document is corrupt (its record does not decode); skipped");
            self.stats.records_skipped.fetch_add(1, Ordering::Relaxed);
        }
        // Puts before deletes is irrelevant (one document per record), but last-used times
        // must follow their tokens.
        changes.sort_by_key(|c| matches!(c, Change::LastUsed { .. }));
        let mut s = self.sync();
        s.versions = versions;
        // Held from now: a restarted replica waits the hold again before purging them.
        let now = Instant::now();
        s.tombstones = tombstones.into_iter().map(|id| (id, now)).collect();
        s.synced = Some(started);
        s.counter_seen = counter.value;
        // The counter was read before the walk, whose pages are read one after another, not
        // as one snapshot: a record written during it under a later claim has a `seq` above
        // the counter read, which the next polls ask for whether the walk read it or not; one
        // claimed before lands as it did behind a scroll's snapshot (the window's
        // `IN_FLIGHT_SEQS`, the sweep after the load).
        s.max_seq = max_seq.min(counter.value);
        // Writes claimed shortly before the load may have been indexed only partly (or not
        // at all) when it read them: the polls of the next SETTLE re-read the last few.
        s.floor = s.max_seq.saturating_sub(IN_FLIGHT_SEQS);
        s.seen.clear();
        s.unseen.clear();
        let floor = s.floor;
        s.seen.push_back((Instant::now(), floor));
        s.since_window = 0;
        s.loads += 1;
        // Records of writes claimed before the load but not landed when it read are re-read
        // by the window only down to the floor: more of them (other replicas' writes landing
        // first) fall behind it. A sweep SETTLE after the load started reads them all.
        s.sweep_after_load = Some(started.mono + SETTLE);
        // It read every record: what failing rounds left unread included.
        s.window_failing = None;
        s.purge_failing = None;
        Ok(Loaded { changes, skipped })
    }

    async fn counter(&self) -> Result<Counter, StoreError> {
        let path = format!("/{}/_doc/counter", enc(&self.index));
        let (status, doc) = self.request(Method::GET, &path, None).await?;
        if status != 200 {
            return Err(Self::unexpected("the counter lookup", status));
        }
        match (
            doc.pointer("/_source/seq").and_then(Value::as_u64),
            hit_version(&doc),
        ) {
            (Some(value), Some(version)) => Ok(Counter { value, version }),
            _ => Err(StoreError::Foreign(
                "the store's counter document is not esgate's".into(),
            )),
        }
    }

    /// Records changed through other replicas since the last poll, as changes to apply (in
    /// `seq` order; only versions newer than those held). After more than half the tombstone
    /// retention without a successful poll, the whole store instead: a delete this replica
    /// missed may have lost its tombstone to a purge, and only a full read shows it.
    pub async fn poll(&self) -> Result<Polled, StoreError> {
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let started = Clocks::now();
        let result = if self.out_of_touch(started) {
            self.reload().await
        } else {
            self.poll_inner().await.map(|changes| Polled {
                reloaded: None,
                changes,
            })
        };
        match &result {
            Ok(_) => {
                self.set_down(None);
                self.sync().synced = Some(started);
            }
            Err(e) => {
                self.stats.poll_failures.fetch_add(1, Ordering::Relaxed);
                self.set_down(Some(e.to_string()));
            }
        }
        result
    }

    fn out_of_touch(&self, now: Clocks) -> bool {
        let s = self.sync();
        out_of_touch(s.synced, now, self.retention)
            || [s.window_failing, s.purge_failing]
                .into_iter()
                .flatten()
                .any(|since| out_of_touch(Some(since), now, self.retention))
    }

    /// Notes how a settle window re-read or a purge round that started at `started` ended
    /// (see `Sync::window_failing`).
    fn note_round(&self, round: Round, started: Clocks, result: Result<(), &StoreError>) {
        let mut s = self.sync();
        let (failing, what) = match round {
            Round::Window => (&mut s.window_failing, "settle window re-read"),
            Round::Purge => (&mut s.purge_failing, "purge round"),
        };
        match (result, &*failing) {
            (Err(e), None) => {
                *failing = Some(started);
                tracing::warn!(index = %self.index, error = %e, "Token store {what} failed: if it still fails after half of store.tombstone_retention, the replica reads the whole store again");
            }
            (Ok(()), Some(_)) => {
                *failing = None;
                tracing::info!(index = %self.index, "Token store {what} succeeded again");
            }
            _ => {}
        }
    }

    async fn reload(&self) -> Result<Polled, StoreError> {
        let loaded = self.load().await?;
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            index = %self.index,
            records = loaded.changes.len(),
            "Token store: no successful poll (or settle window re-read, or purge round) for half of store.tombstone_retention; read the whole store again"
        );
        Ok(Polled {
            reloaded: Some(loaded.changes),
            changes: vec![],
        })
    }

    async fn poll_inner(&self) -> Result<Vec<Change>, StoreError> {
        let (max_seq, unseen) = {
            let mut s = self.sync();
            s.since_window = s.since_window.saturating_add(1);
            let unseen: Vec<u64> = s.unseen.iter().copied().collect();
            (s.max_seq, unseen)
        };
        // Nothing claimed since the last record seen: one GET by id, whatever the size of the
        // store (the idle poll).
        let counter = self.counter().await?;
        let now = Instant::now();
        {
            let mut s = self.sync();
            s.counter_seen = s.counter_seen.max(counter.value);
            if counter.value <= s.max_seq {
                s.abandoned = None;
                if unseen.is_empty() {
                    drop(s);
                    self.settle(now);
                    return Ok(vec![]);
                }
            } else {
                // A claim whose records never appear (its writer died between the claim and
                // the write) stops counting once it is older than SETTLE.
                match s.abandoned {
                    Some((value, since)) if value == counter.value => {
                        if now.duration_since(since) >= SETTLE {
                            s.max_seq = s.max_seq.max(value);
                            s.abandoned = None;
                        }
                    }
                    _ => s.abandoned = Some((counter.value, now)),
                }
            }
        }
        let not_ours = json!({"terms": {"kind": ["counter", "id_key"]}});
        // New records; the settle window is re-read beside the polls (`window_read`).
        let query = if !unseen.is_empty() {
            // And the `seq`s passed unread (a write landing after a later one): only theirs.
            json!({"bool": {
                "should": [
                    {"range": {"seq": {"gt": max_seq}}},
                    {"terms": {"seq": unseen}}
                ],
                "minimum_should_match": 1,
                "must_not": [not_ours]
            }})
        } else {
            json!({"bool": {
                "filter": [{"range": {"seq": {"gt": max_seq}}}],
                "must_not": [not_ours]
            }})
        };
        let mut out = vec![];
        self.each_record(&query, |hit| out.extend(self.accept(hit)))
            .await?;
        self.settle(Instant::now());
        Ok(out)
    }

    /// Whether the settle window is due for a re-read ([`ClusterStore::window_read`]): every
    /// `WINDOW_EVERY` polls while the floor is below the highest `seq` seen.
    pub fn window_due(&self) -> bool {
        let s = self.sync();
        s.since_window >= WINDOW_EVERY && s.floor < s.max_seq
    }

    /// The settle window's re-read (every `WINDOW_EVERY` polls, beside the poll and outside the
    /// store's writer lock: it pages through every record of the window, last-used times
    /// excepted, and a bulk of many records under one `seq` (`store import`, a large bulk)
    /// takes seconds): the records of `seq`s above the floor whose version is newer than the
    /// one held (records that became visible late or in parts). Apply them with
    /// [`ClusterStore::window_apply`], which then moves the floor: the floor passes a `seq`
    /// only once what a re-read that started [`SETTLE`] after this replica saw it claimed
    /// found is applied.
    pub async fn window_read(&self) -> Result<WindowRead, StoreError> {
        if let Some(reason) = self.down_reason() {
            return Err(StoreError::Unavailable(reason));
        }
        let started = Clocks::now();
        let result = self.window_round().await;
        self.note_round(Round::Window, started, result.as_ref().map(|_| ()));
        result
    }

    /// [`ClusterStore::window_read`]'s read.
    async fn window_round(&self) -> Result<WindowRead, StoreError> {
        // Its start (what it settles) is when it gets to read.
        let _paging = self.paging.lock().await;
        let (floor, max_seq, mut read) = {
            let mut s = self.sync();
            s.since_window = 0;
            let read = WindowRead {
                settled: s.settled(Instant::now()),
                found: Found::starting(&s),
            };
            (s.floor, s.max_seq, read)
        };
        if floor >= max_seq {
            return Ok(read);
        }
        let query = json!({"bool": {
            "filter": [{"range": {"seq": {"gt": floor, "lte": max_seq}}}],
            "must_not": [{"terms": {"kind": ["counter", "id_key", "last_used"]}}]
        }});
        self.read_newer(&query, "the settle window re-read", false, &mut read.found)
            .await?;
        Ok(read)
    }

    /// Applies what [`ClusterStore::window_read`] found (under the store's writer lock, like a
    /// poll): the changes of the records still newer than those held; then the floor moves
    /// (see `Sync::pass`). A re-read that a load overtook (a replica out of touch read
    /// the whole store meanwhile) does neither: the load set the floor and versions afresh.
    /// A find read before a forget that is no longer held is not applied, and the floor stays
    /// (a later re-read reads that record again, as it then is).
    pub fn window_apply(&self, read: &WindowRead) -> Vec<Change> {
        let found = &read.found;
        if self.sync().loads != found.loads {
            return vec![];
        }
        let mut stale = false;
        let out = found
            .hits
            .iter()
            .filter_map(|hit| match self.accept_found(hit, found.forgets) {
                Ok(change) => change,
                Err(Stale) => {
                    stale = true;
                    None
                }
            })
            .collect();
        let mut s = self.sync();
        // An empty re-read is applied without the writer lock: a load may have come since the
        // check above (its floor is its own).
        if !stale && s.loads == found.loads {
            s.pass(read.settled);
        }
        out
    }

    /// The sweep's read (every [`SWEEP_EVERY`] poll intervals, beside the poll and outside the
    /// store's writer lock: it pages through every record): the records, last-used times
    /// excepted, whose version is newer than the one this replica holds. Records a writer
    /// landed behind the floor (a writer paused with its clocks, as a stopped VM may be; a
    /// write that landed after its own request timed out, or whose writer was killed before
    /// stamping it again, see `LATE`) are never read by the change poll: the sweep bounds
    /// how long they stay unseen. Apply them with [`ClusterStore::sweep_apply`].
    pub async fn sweep_read(&self) -> Result<Found, StoreError> {
        if let Some(reason) = self.down_reason() {
            return Err(StoreError::Unavailable(reason));
        }
        // Each page under the paging lock, not the whole read: a window re-read waits for one
        // page at most.
        let started = Instant::now();
        let mut found = Found::starting(&self.sync());
        let query = json!({"bool": {"must_not": [
            {"terms": {"kind": ["counter", "id_key", "last_used"]}}
        ]}});
        self.read_newer(&query, "the store sweep", true, &mut found)
            .await?;
        let mut s = self.sync();
        if s.sweep_after_load.is_some_and(|due| started >= due) {
            s.sweep_after_load = None;
        }
        Ok(found)
    }

    /// Adds to `found` the records `query` matches whose version is newer than the one this
    /// replica holds (the sweep's and the settle window re-read's read; `what` and `paged` as
    /// for [`ClusterStore::each_scrolled`]).
    async fn read_newer(
        &self,
        query: &Value,
        what: &str,
        paged: bool,
        found: &mut Found,
    ) -> Result<(), StoreError> {
        self.each_scrolled(query, what, paged, |hit| {
            if let (Some(id), Some(version)) =
                (hit.get("_id").and_then(Value::as_str), hit_version(hit))
            {
                if self.newer_than_held(id, version) {
                    found.hits.push(hit.clone());
                }
            }
            Ok(())
        })
        .await
    }

    /// Whether a sweep is due now besides the periodic ones: [`SETTLE`] after a load (at start,
    /// or after a replica out of touch read the whole store), until a sweep started then. The
    /// load sets the floor a few `seq`s below the highest it read (`IN_FLIGHT_SEQS`); a write
    /// claimed before the load whose records landed after it read, while more than that many
    /// later writes landed first (other replicas'), is below the floor: without this sweep a
    /// replica that started then missed that change (a revocation) until the periodic sweep.
    pub fn sweep_due(&self) -> bool {
        self.sync()
            .sweep_after_load
            .is_some_and(|due| Instant::now() >= due)
    }

    /// Applies what [`ClusterStore::sweep_read`] (or a purge round) found (under the store's
    /// writer lock, like a poll): the changes of the records still newer than those held;
    /// nothing when a load came since the read started (see `Found::loads`), nor a record no
    /// longer held whose version was forgotten since (see `Found::forgets`).
    pub fn sweep_apply(&self, found: &Found) -> Vec<Change> {
        let floor = {
            let s = self.sync();
            if s.loads != found.loads {
                return vec![];
            }
            s.floor
        };
        let mut recovered = 0u64;
        let mut out = vec![];
        for hit in &found.hits {
            if let Ok(Some(change)) = self.accept_found(hit, found.forgets) {
                let seq = hit.pointer("/_source/seq").and_then(Value::as_u64);
                if seq.is_some_and(|seq| seq <= floor) {
                    recovered += 1;
                }
                out.push(change);
            }
        }
        if recovered > 0 {
            self.stats
                .records_recovered
                .fetch_add(recovered, Ordering::Relaxed);
            tracing::warn!(
                index = %self.index,
                records = recovered,
                "Token store sweep or purge round found records the change poll had missed (landed long after their claim); applied"
            );
        }
        out
    }

    /// Records the highest `seq` seen now (the floor moves only after window re-reads).
    fn settle(&self, now: Instant) {
        self.sync().observe(now);
    }

    /// Appends a bulk action line (`index`, `delete`) on document `id` of the store's index,
    /// at `version` (optimistic concurrency).
    fn versioned_action(&self, lines: &mut String, action: &str, id: &str, version: &Version) {
        let meta = json!({action: {
            "_index": self.index,
            "_id": id,
            "if_seq_no": version.seq_no,
            "if_primary_term": version.primary_term,
        }});
        lines.push_str(&meta.to_string());
        lines.push('\n');
    }

    /// Whether `version` of record `id` is newer than the one this replica holds (or it holds
    /// none).
    fn newer_than_held(&self, id: &str, version: Version) -> bool {
        self.sync()
            .versions
            .get(id)
            .is_none_or(|held| *held < version)
    }

    /// A polled hit as a change, when it is newer than what this replica holds.
    fn accept(&self, hit: &Value) -> Option<Change> {
        self.accept_hit(hit, None).unwrap_or(None)
    }

    /// A hit a round read, which started at `forgets` (`Sync::forgets`), as a change when it
    /// is newer than what this replica holds; `Err(Stale)` when a held version was forgotten
    /// since and this replica holds none of the record, unless it is a tombstone (see
    /// [`Found::forgets`]; applying a tombstone revokes, never grants). A record created
    /// afresh that is skipped is read by a later round.
    fn accept_found(&self, hit: &Value, forgets: u64) -> Result<Option<Change>, Stale> {
        self.accept_hit(hit, Some(forgets))
    }

    fn accept_hit(&self, hit: &Value, forgets: Option<u64>) -> Result<Option<Change>, Stale> {
        let (Some(id), Some(source), Some(version)) = (
            hit.get("_id").and_then(Value::as_str),
            hit.get("_source"),
            hit_version(hit),
        ) else {
            return Ok(None);
        };
        let seq = source.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let mut s = self.sync();
        let bounded = seq.min(s.counter_seen);
        if s.versions.get(id).is_some_and(|held| *held >= version) {
            s.saw(bounded);
            return Ok(None);
        }
        // Under the same lock as the check above: a purge forgets beside the apply.
        if forgets.is_some_and(|f| f != s.forgets)
            && !s.versions.contains_key(id)
            && source.get("deleted") != Some(&Value::Bool(true))
        {
            return Err(Stale);
        }
        s.versions.insert(id.to_owned(), version);
        drop(s);
        Ok(match decode(id, source) {
            Ok(Some(Decoded::Change(c))) => {
                self.stats.records_applied.fetch_add(1, Ordering::Relaxed);
                let mut s = self.sync();
                s.saw(bounded);
                if c.is_delete() {
                    s.tombstones.insert(id.to_owned(), Instant::now());
                } else {
                    s.tombstones.remove(id);
                }
                Some(c)
            }
            Ok(Some(_)) => None,
            Ok(None) | Err(_) => {
                let document = crate::kibana::redact_link_ids(id);
                tracing::error!(index = %self.index, %document, "Token store document is corrupt or not esgate's; skipped (what it names is dropped, as a load would)");
                self.stats.records_skipped.fetch_add(1, Ordering::Relaxed);
                // Attack 19a: the version held before stayed in force, so a token whose newer
                // record does not decode (a narrowing written by a newer esgate, a damaged
                // document) kept its older rights here, while a replica that loaded the store
                // again did not hold it at all. Now the same as a load: absent.
                unreadable(id)
            }
        })
    }

    /// Before planning a write: the latest counter, and every change up to it (waiting briefly
    /// for records of a `seq` claimed by another replica but not indexed yet).
    pub async fn catch_up(&self) -> Result<(Counter, Polled), StoreError> {
        if let Some(reason) = self.down_reason() {
            // Fail fast while the poller knows the cluster is away; it retries on its own.
            return Err(StoreError::Unavailable(reason));
        }
        let counter = self.counter().await?;
        {
            let mut s = self.sync();
            s.counter_seen = s.counter_seen.max(counter.value);
        }
        let mut polled = self.poll().await?;
        let deadline = Instant::now() + IN_FLIGHT_WAIT;
        while self.sync().max_seq < counter.value && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(30)).await;
            polled.then(self.poll().await?);
        }
        Ok((counter, polled))
    }

    /// Writes `changes` under the next `seq` (see the module invariants). Returns the changes
    /// that were written (all of them on `Ok`); `Err(Conflict)` when another replica changed
    /// the counter or one of the records first, with what was written before the conflict.
    /// A write whose records landed late (see `LATE`) is stamped again under a fresh `seq`
    /// before it returns.
    pub async fn commit(
        &self,
        counter: Counter,
        changes: &[Change],
    ) -> Result<(), (Vec<Change>, StoreError)> {
        let claim = self.claim_next(&counter).await.map_err(|e| (vec![], e))?;
        self.write_claimed(claim, changes).await
    }

    /// The first step of [`ClusterStore::commit`]: claims `counter.value + 1` on the counter
    /// document, if it is still at `counter`'s version (`Err(Conflict)` when another replica
    /// claimed first).
    pub async fn claim_next(&self, counter: &Counter) -> Result<Claim, StoreError> {
        let at = Clocks::now();
        match self.claim(counter).await? {
            (s, _) if (200..300).contains(&s) => Ok(Claim {
                seq: counter.value + 1,
                at,
            }),
            (409, _) => {
                self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Conflict)
            }
            (s, _) => Err(Self::unexpected("the counter claim", s)),
        }
    }

    /// The second step of [`ClusterStore::commit`]: writes `changes` under `claim`'s `seq`,
    /// then, when the records landed `LATE` after the claim was sent, stamps them again
    /// under a fresh `seq` (see `ClusterStore::restamp`).
    pub async fn write_claimed(
        &self,
        claim: Claim,
        changes: &[Change],
    ) -> Result<(), (Vec<Change>, StoreError)> {
        let seq = claim.seq;
        let now = crate::time::now();
        let mut lines = String::new();
        let mut owners = vec![];
        for (i, change) in changes.iter().enumerate() {
            let docs = documents(change, seq, now).map_err(|e| (vec![], e))?;
            for (id, source) in docs {
                let mut meta = json!({"_index": self.index, "_id": id});
                let op = match (change, self.sync().versions.get(&id)) {
                    (Change::LastUsed { .. }, _) => "index",
                    (_, Some(v)) => {
                        meta["if_seq_no"] = json!(v.seq_no);
                        meta["if_primary_term"] = json!(v.primary_term);
                        "index"
                    }
                    (_, None) => "create",
                };
                lines.push_str(&json!({ op: meta }).to_string());
                lines.push('\n');
                lines.push_str(&source.to_string());
                lines.push('\n');
                owners.push((i, id, source));
            }
        }
        let answer = self.bulk(lines).await;
        let (status, answer) = match answer {
            Ok(a) => a,
            Err(e) => return Err((vec![], e)),
        };
        if status != 200 {
            return Err((vec![], Self::unexpected("a store write", status)));
        }
        let items = answer
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut failed = vec![false; changes.len()];
        let mut conflict = false;
        let mut other = None;
        // The records written, with their versions, to stamp again if they landed late
        // (last-used times aside: a missed one is written again by the next flush).
        let mut landed = vec![];
        {
            let mut s = self.sync();
            for ((i, id, source), item) in owners
                .into_iter()
                .zip(items.iter().chain(std::iter::repeat(&Value::Null)))
            {
                match bulk_outcome(item.as_object().and_then(|o| o.values().next())) {
                    Ok(v) => {
                        s.versions.insert(id.clone(), v);
                        if changes[i].is_delete() {
                            s.tombstones.insert(id.clone(), Instant::now());
                        } else {
                            s.tombstones.remove(&id);
                        }
                        if !matches!(changes[i], Change::LastUsed { .. }) {
                            landed.push((id, source, v));
                        }
                    }
                    Err(st) => {
                        failed[i] = true;
                        if st == 409 {
                            conflict = true;
                            // The tombstone this replica holds may have been purged: forget its
                            // version, so the write is planned again after a catch-up as a
                            // `create` (which a record still there refuses) or on the newer
                            // version the catch-up brings.
                            if s.tombstones.contains_key(&id) {
                                s.forget(&id);
                            }
                        } else {
                            other = Some(st);
                        }
                    }
                }
            }
            s.counter_seen = s.counter_seen.max(seq);
            s.saw(seq);
        }
        let written: Vec<Change> = changes
            .iter()
            .zip(&failed)
            .filter(|(_, f)| !**f)
            .map(|(c, _)| c.clone())
            .collect();
        if let Err(e) = self.restamp(landed, claim.at).await {
            return Err((written, e));
        }
        if !conflict && other.is_none() {
            return Ok(());
        }
        if conflict {
            self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
            Err((written, StoreError::Conflict))
        } else {
            Err((
                written,
                Self::unexpected("a store write item", other.unwrap_or(0) as u16),
            ))
        }
    }

    /// Stamps `landed` (documents as written, with their versions) again under a fresh `seq`
    /// while the write claimed at `claimed` came back `LATE`: other replicas' polls may have
    /// settled past the claimed `seq` before its records landed, and would never read them (a
    /// revocation that works on one replica only). Each document is written on the version
    /// landed; one changed since is left alone (the newer write carries a later `seq`). After
    /// [`MAX_RESTAMPS`] late rounds the write fails as unavailable: its records are in the store
    /// but it is not acknowledged.
    async fn restamp(
        &self,
        mut landed: Vec<(String, Value, Version)>,
        mut claimed: Clocks,
    ) -> Result<(), StoreError> {
        let mut rounds = 0;
        while !landed.is_empty() && late(claimed, Clocks::now()) {
            if rounds == MAX_RESTAMPS {
                return Err(StoreError::Unavailable(format!(
                    "the store cluster took more than {LATE:?} to land a write {} times in a row",
                    MAX_RESTAMPS + 1
                )));
            }
            rounds += 1;
            let (seq, at) = self.claim_any().await?;
            tracing::warn!(
                index = %self.index,
                seq,
                records = landed.len(),
                "Token store write landed late after its claim: stamped again under a fresh sequence"
            );
            claimed = at;
            let mut lines = String::new();
            for (id, source, v) in landed.iter_mut() {
                source["seq"] = json!(seq);
                self.versioned_action(&mut lines, "index", id, v);
                lines.push_str(&source.to_string());
                lines.push('\n');
            }
            let (status, answer) = self.bulk(lines).await?;
            if status != 200 {
                return Err(Self::unexpected("a store write", status));
            }
            let items = answer
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut s = self.sync();
            let mut kept = vec![];
            for ((id, source, _), item) in landed
                .into_iter()
                .zip(items.iter().chain(std::iter::repeat(&Value::Null)))
            {
                match bulk_outcome(item.get("index")) {
                    Ok(v) => {
                        // Unless a poll brought a newer version meanwhile.
                        if s.versions.get(&id).is_none_or(|held| *held <= v) {
                            s.versions.insert(id.clone(), v);
                            if s.tombstones.contains_key(&id) {
                                s.tombstones.insert(id.clone(), Instant::now());
                            }
                        }
                        kept.push((id, source, v));
                    }
                    // Changed since it landed: superseded by a later write.
                    Err(409) => {}
                    Err(st) => {
                        drop(s);
                        return Err(Self::unexpected("a store write item", st as u16));
                    }
                }
            }
            s.counter_seen = s.counter_seen.max(seq);
            s.saw(seq);
            drop(s);
            landed = kept;
        }
        Ok(())
    }

    /// One purge round at `now` (see [`Store::purge_tombstones`](super::Store::purge_tombstones)):
    /// deletes every tombstone whose `deleted_at` is at least the retention old, each only at
    /// the version read (a record written again meanwhile stays), then a deleted token's
    /// last-used time, at the version read before (one written again meanwhile stays too);
    /// returns the tombstones without a time as deletes to write again.
    /// Safe for every replica: one that polled within half the retention has seen those
    /// tombstones, and one that did not reads the whole store at its next poll.
    ///
    /// `deleted_at` is the writer's wall clock, read before its write: a writer whose clock is
    /// behind (or that was paused between reading it and writing) stamps a tombstone that looks
    /// old the moment it lands, and a purger whose clock is ahead sees every tombstone as old.
    /// So a tombstone is purged only once this replica has also held that very version for
    /// `ClusterStore::purge_hold` (half the retention, 10 s to 1 h) on its own monotonic
    /// clock: replicas in touch have polled it by then, whatever the clocks say.
    ///
    /// Runs beside polls and writes (not under the store's writer lock: it pages through every
    /// tombstone): each delete names the version read, and what this replica holds is dropped
    /// only while it is still that version.
    pub async fn purge(&self, now: UnixTime) -> Result<Purged, StoreError> {
        if let Some(reason) = self.down_reason() {
            return Err(StoreError::Unavailable(reason));
        }
        let started = Clocks::now();
        let result = self.purge_round(now).await;
        self.note_round(Round::Purge, started, result.as_ref().map(|_| ()));
        result
    }

    /// [`ClusterStore::purge`]'s round.
    async fn purge_round(&self, now: UnixTime) -> Result<Purged, StoreError> {
        let horizon = now.saturating_sub(self.retention.as_secs() as i64);
        let hold = self.purge_hold();
        let query = json!({"bool": {"filter": [{"term": {"deleted": true}}]}});
        let mut old = vec![];
        let mut unstamped = vec![];
        // Each page under the paging lock (see `sweep_read`).
        let mut newer = Found::starting(&self.sync());
        self.each_scrolled(&query, "a tombstone purge", true, |hit| {
            let (Some(id), Some(source), Some(version)) = (
                hit.get("_id").and_then(Value::as_str),
                hit.get("_source"),
                hit_version(hit),
            ) else {
                return Ok(());
            };
            // Only esgate's own tombstones; anything else is left as it is.
            let Ok(Some(Decoded::Change(change))) = decode(id, source) else {
                return Ok(());
            };
            if !change.is_delete() {
                return Ok(());
            }
            if self.newer_than_held(id, version) {
                newer.hits.push(hit.clone());
            }
            match source.pointer("/record/deleted_at").and_then(Value::as_i64) {
                Some(at) if at <= horizon && self.held_for(id, version, hold) => {
                    old.push((id.to_owned(), version, change))
                }
                Some(_) => {}
                None if unstamped.len() < PAGE => unstamped.push((id.to_owned(), version, change)),
                None => {}
            }
            Ok(())
        })
        .await?;
        let mut purged = 0;
        for chunk in old.chunks(PAGE) {
            // A deleted token's last-used time goes with its tombstone, at the version read
            // before the tombstone is deleted: a token written again meanwhile (`store import`)
            // keeps its tombstone (the delete names the version read) and its new last-used
            // time (which the version read no longer matches).
            let last_used = self.last_used_versions(chunk).await?;
            let mut lines = String::new();
            for (id, version, _) in chunk {
                self.versioned_action(&mut lines, "delete", id, version);
            }
            let (status, answer) = self.bulk(lines).await?;
            if status != 200 {
                return Err(Self::unexpected("a tombstone purge", status));
            }
            let items = answer.get("items").and_then(Value::as_array);
            let versions: HashMap<&str, Version> =
                chunk.iter().map(|(id, v, _)| (id.as_str(), *v)).collect();
            let mut after = String::new();
            {
                for item in items.into_iter().flatten() {
                    let Some(result) = item.get("delete") else {
                        continue;
                    };
                    let id = result.get("_id").and_then(Value::as_str).unwrap_or("");
                    let deleted = result.get("status").and_then(Value::as_u64) == Some(200);
                    let Some(version) = versions.get(id) else {
                        continue;
                    };
                    if !deleted {
                        continue;
                    }
                    purged += 1;
                    self.forget_purged(id, *version);
                    if let Some((lu, v)) = id
                        .strip_prefix("token:")
                        .and_then(|token| last_used.get_key_value(&doc_id("last_used", token)))
                    {
                        self.versioned_action(&mut after, "delete", lu, v);
                    }
                }
            }
            if !after.is_empty() {
                // A conflict leaves a last-used time written since: the token is back.
                let (status, _) = self.bulk(after).await?;
                if status != 200 {
                    return Err(Self::unexpected("a tombstone purge", status));
                }
            }
        }
        self.stats
            .tombstones_purged
            .fetch_add(purged as u64, Ordering::Relaxed);
        Ok(Purged {
            purged,
            unstamped,
            newer,
        })
    }

    /// A tombstone at `version` of `id` was purged: forgets it, unless a poll or write brought
    /// a newer version meanwhile.
    fn forget_purged(&self, id: &str, version: Version) {
        let mut s = self.sync();
        if s.versions.get(id) == Some(&version) {
            s.forget(id);
        }
    }

    /// The versions of the last-used documents of the deleted tokens among `tombstones`, by
    /// document id (those that exist).
    async fn last_used_versions(
        &self,
        tombstones: &[(String, Version, Change)],
    ) -> Result<HashMap<String, Version>, StoreError> {
        let ids: Vec<String> = tombstones
            .iter()
            .filter_map(|(_, _, change)| match change {
                Change::DeleteToken { id } => Some(doc_id("last_used", id)),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let path = format!("/{}/_mget", enc(&self.index));
        let (status, answer) = self
            .json(Method::POST, &path, &json!({ "ids": ids }))
            .await?;
        if status != 200 {
            return Err(Self::unexpected("a last-used lookup", status));
        }
        let docs = answer.get("docs").and_then(Value::as_array);
        Ok(docs
            .into_iter()
            .flatten()
            .filter(|d| d.get("found") == Some(&Value::Bool(true)))
            .filter_map(|d| {
                let id = d.get("_id").and_then(Value::as_str)?;
                Some((id.to_owned(), hit_version(d)?))
            })
            .collect())
    }

    /// Deletes the last-used documents whose token document is gone (rel26b), on the sweep's
    /// schedule: the purge deletes a deleted token's last-used time beside its tombstone, but
    /// one stays when that second request fails after the tombstone went, or when a last-used
    /// write (a plain `index`: a replica that had not polled the delete yet) lands after the
    /// purge read its version. No other round removes them, and every load reads each one.
    ///
    /// Pages through the last-used documents (each page under the paging lock, as the sweep),
    /// keeping those whose token this replica does not hold as a live record; asks the cluster
    /// for those tokens' documents; deletes the last-used document of each token the cluster
    /// answers is not found, at the version read before that answer. A live token's document
    /// is never missing (its last-used time is written only after the token was), so its
    /// last-used time stays; a last-used time written after the read (the token written again,
    /// `store import`) has another version and the delete meets a conflict: nothing written
    /// since the read is lost. A token whose document is a tombstone keeps its last-used time
    /// here (the purge deletes both). Returns how many were deleted.
    pub async fn purge_orphans(&self) -> Result<usize, StoreError> {
        if let Some(reason) = self.down_reason() {
            return Err(StoreError::Unavailable(reason));
        }
        let query = json!({"bool": {"filter": [{"term": {"kind": "last_used"}}]}});
        let mut candidates: Vec<(String, String, Version)> = vec![];
        self.each_scrolled(&query, "a last-used sweep", true, |hit| {
            let (Some(id), Some(version)) =
                (hit.get("_id").and_then(Value::as_str), hit_version(hit))
            else {
                return Ok(());
            };
            let Some(token) = id.strip_prefix("last_used:") else {
                return Ok(());
            };
            let token_doc = doc_id("token", token);
            let s = self.sync();
            if !s.versions.contains_key(&token_doc) || s.tombstones.contains_key(&token_doc) {
                candidates.push((id.to_owned(), token_doc, version));
            }
            Ok(())
        })
        .await?;
        let mut deleted = 0;
        for chunk in candidates.chunks(PAGE) {
            let ids: Vec<&str> = chunk.iter().map(|(_, token, _)| token.as_str()).collect();
            let path = format!("/{}/_mget", enc(&self.index));
            let (status, answer) = self
                .json(Method::POST, &path, &json!({ "ids": ids }))
                .await?;
            if status != 200 {
                return Err(Self::unexpected("a last-used sweep", status));
            }
            // Only the tokens the cluster says are not found: an answer that names none keeps all.
            let gone: std::collections::HashSet<&str> = answer
                .get("docs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|d| d.get("found") == Some(&Value::Bool(false)))
                .filter_map(|d| d.get("_id").and_then(Value::as_str))
                .collect();
            let mut lines = String::new();
            for (id, token, version) in chunk {
                if gone.contains(token.as_str()) {
                    self.versioned_action(&mut lines, "delete", id, version);
                }
            }
            if lines.is_empty() {
                continue;
            }
            let (status, answer) = self.bulk(lines).await?;
            if status != 200 {
                return Err(Self::unexpected("a last-used sweep", status));
            }
            deleted += answer
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| item.get("delete"))
                .filter(|r| r.get("status").and_then(Value::as_u64) == Some(200))
                .count();
        }
        Ok(deleted)
    }

    /// How long this replica holds a tombstone before it may purge it: half the retention (the
    /// time a replica may go without a poll before it reads the whole store: one that missed
    /// the tombstone was out of touch at least this long by the purger's monotonic clock), at
    /// least two [`SETTLE`]s (a record indexed late is seen by the settle window re-reads) and
    /// at most [`MAX_PURGE_HOLD`].
    fn purge_hold(&self) -> Duration {
        purge_hold(self.retention)
    }

    /// Whether this replica holds a version of `id` other than `version` (the record changed
    /// since `version` was read).
    pub fn holds_other_version(&self, id: &str, version: Version) -> bool {
        self.sync().versions.get(id).is_some_and(|v| *v != version)
    }

    /// Whether this replica holds `version` of `id` as a tombstone, since at least `hold` ago.
    fn held_for(&self, id: &str, version: Version, hold: Duration) -> bool {
        let s = self.sync();
        s.versions.get(id) == Some(&version)
            && s.tombstones
                .get(id)
                .is_some_and(|since| since.elapsed() >= hold)
    }

    /// One `_bulk` request of NDJSON `lines`, refreshed (visible to every replica's poll once
    /// answered): its status and answer.
    async fn bulk(&self, lines: String) -> Result<(u16, Value), StoreError> {
        self.request(
            Method::POST,
            "/_bulk?refresh=true",
            Some(("application/x-ndjson", Bytes::from(lines))),
        )
        .await
    }

    /// Writes every change as is (no optimistic concurrency: `store import`). Each page of
    /// documents claims a change sequence of its own, so running replicas pick every page up
    /// as it lands, however long the import takes.
    pub async fn import(&self, changes: &[Change]) -> Result<usize, StoreError> {
        let mut docs = vec![];
        for c in changes {
            docs.extend(documents(c, 0, crate::time::now())?);
        }
        let n = docs.len();
        for chunk in docs.chunks_mut(PAGE) {
            // A page that landed late is written again under a fresh sequence (see `LATE`).
            let mut rounds = 0;
            loop {
                let (seq, claimed) = self.claim_any().await?;
                let mut lines = String::new();
                for (id, source) in chunk.iter_mut() {
                    source["seq"] = json!(seq);
                    lines
                        .push_str(&json!({"index": {"_index": self.index, "_id": id}}).to_string());
                    lines.push('\n');
                    lines.push_str(&source.to_string());
                    lines.push('\n');
                }
                let (status, answer) = self.bulk(lines).await?;
                if status != 200 || answer.get("errors") == Some(&Value::Bool(true)) {
                    return Err(Self::unexpected("an import write", status));
                }
                if !late(claimed, Clocks::now()) {
                    break;
                }
                if rounds == MAX_RESTAMPS {
                    return Err(StoreError::Unavailable(format!(
                        "the store cluster took more than {LATE:?} to land an import page {} times in a row",
                        MAX_RESTAMPS + 1
                    )));
                }
                rounds += 1;
            }
        }
        Ok(n)
    }

    /// Writes `counter.value + 1` over the counter document if it is still at `counter`'s
    /// version (409 when another replica claimed first); the status and answer.
    async fn claim(&self, counter: &Counter) -> Result<(u16, Value), StoreError> {
        let path = format!(
            "/{}/_doc/counter?if_seq_no={}&if_primary_term={}",
            enc(&self.index),
            counter.version.seq_no,
            counter.version.primary_term
        );
        let body = json!({"kind": "counter", "key": "counter", "seq": counter.value + 1});
        self.json(Method::PUT, &path, &body).await
    }

    /// Claims the next change sequence whatever the state (import, a late write stamped
    /// again), retrying while replicas claim at the same time: the sequence, and when its claim
    /// was sent.
    async fn claim_any(&self) -> Result<(u64, Clocks), StoreError> {
        for attempt in 0..50u64 {
            let counter = self.counter().await?;
            let at = Clocks::now();
            match self.claim(&counter).await? {
                (s, _) if (200..300).contains(&s) => return Ok((counter.value + 1, at)),
                (409, _) => {
                    tokio::time::sleep(Duration::from_millis(10 + attempt * 5)).await;
                }
                (s, _) => return Err(Self::unexpected("the counter claim", s)),
            }
        }
        Err(StoreError::Conflict)
    }

    /// The highest `seq` seen and the poll floor (tests, metrics).
    pub fn positions(&self) -> (u64, u64) {
        let s = self.sync();
        (s.max_seq, s.floor)
    }
}

/// When a record was last used, merged: the later time wins.
pub fn merge_last_used(a: Option<UnixTime>, b: UnixTime) -> UnixTime {
    a.map_or(b, |a| a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_record_drops_what_it_names() {
        assert_eq!(
            unreadable("token:tok_a"),
            Some(Change::DeleteToken { id: "tok_a".into() })
        );
        assert_eq!(
            unreadable("ip_filter:office"),
            Some(Change::DeleteIpFilter {
                name: "office".into()
            })
        );
        assert_eq!(
            unreadable("filter:flt_1"),
            Some(Change::DeleteFilter { id: "flt_1".into() })
        );
        assert_eq!(
            unreadable("link:lnk_1"),
            Some(Change::DeleteLink { id: "lnk_1".into() })
        );
        for id in ["last_used:tok_a", "counter", "id_key", "other:x"] {
            assert_eq!(unreadable(id), None, "{id}");
        }
    }

    #[test]
    fn documents_esgate_did_not_write_are_foreign_and_bad_records_corrupt() {
        let ok = json!({"kind": "filter", "key": "filter:f1", "seq": 3,
            "record": {"id": "f1", "description": "d", "field": "env", "value": "x", "created_at": 1}});
        assert!(matches!(
            decode("filter:f1", &ok),
            Ok(Some(Decoded::Change(Change::PutFilter { .. })))
        ));
        let cases = [
            (
                "filter:f1",
                json!({"kind": "filter", "key": "filter:f1", "seq": 1, "extra": 1}),
            ),
            (
                "filter:f1",
                json!({"kind": "filter", "key": "filter:f2", "seq": 1}),
            ),
            ("x", json!({"kind": "x", "key": "x", "seq": 1})),
            (
                "token:a",
                json!({"kind": "filter", "key": "token:a", "seq": 1}),
            ),
            ("token:a", json!({"kind": "token", "key": "token:a"})),
            ("token:a", json!("text")),
        ];
        for (id, source) in cases {
            assert!(decode(id, &source).is_err(), "{id} {source}");
        }
        let corrupt = [
            (
                "token:a",
                json!({"kind": "token", "key": "token:a", "seq": 1, "record": {"id": "a"}}),
            ),
            (
                "filter:f1",
                json!({"kind": "filter", "key": "filter:f1", "seq": 1,
                "record": {"id": "other", "description": "d", "field": "env", "value": "x", "created_at": 1}}),
            ),
            (
                "last_used:a",
                json!({"kind": "last_used", "key": "last_used:a", "seq": 1, "record": {}}),
            ),
        ];
        for (id, source) in corrupt {
            assert!(matches!(decode(id, &source), Ok(None)), "{id}");
        }
        let tomb = json!({"kind": "token", "key": "token:a", "seq": 9, "deleted": true});
        assert!(matches!(
            decode("token:a", &tomb),
            Ok(Some(Decoded::Change(Change::DeleteToken { id }))) if id == "a"
        ));
    }

    #[test]
    fn a_tombstone_records_when_it_was_written_and_still_decodes_as_the_delete() {
        let c = Change::DeleteIpFilter {
            name: "office".into(),
        };
        let docs = documents(&c, 7, 1_700_000_123).unwrap();
        assert_eq!(docs.len(), 1);
        let (id, source) = &docs[0];
        assert_eq!(source["deleted"], json!(true));
        assert_eq!(source["record"]["deleted_at"], json!(1_700_000_123));
        match decode(id, source) {
            Ok(Some(Decoded::Change(d))) => assert_eq!(d, c),
            _ => panic!("a tombstone with its time decodes as the delete"),
        }
        // A tombstone written before deletion times were recorded decodes alike.
        let legacy = json!({"kind": "ip_filter", "key": id, "seq": 7, "deleted": true});
        assert!(matches!(decode(id, &legacy), Ok(Some(Decoded::Change(d))) if d == c));
        assert!(c.is_delete());
        assert!(!Change::LastUsed { times: vec![] }.is_delete());
    }

    /// A replica reads the whole store when more than half the retention went by since its
    /// last successful look, when it never looked, and when the clock went back.
    #[test]
    fn out_of_touch_is_half_the_retention_or_a_clock_gone_back() {
        let day = Duration::from_secs(86_400);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mono = Instant::now();
        let t = Clocks { wall, mono };
        // Both clocks moved on by `d`.
        let after = |d: Duration| Clocks {
            wall: wall + d,
            mono: mono + d,
        };
        let retention = 8 * day;
        assert!(out_of_touch(None, t, retention));
        assert!(!out_of_touch(Some(t), t, retention));
        assert!(!out_of_touch(Some(t), after(4 * day), retention));
        assert!(out_of_touch(
            Some(t),
            after(4 * day + Duration::from_millis(1)),
            retention
        ));
        let back = Clocks {
            wall: wall - Duration::from_secs(1),
            mono: mono + Duration::from_secs(1),
        };
        assert!(out_of_touch(Some(t), back, retention));
    }

    /// Review 13b: half the retention on either clock is out of touch. A wall clock that ran
    /// fast when the replica last looked and was set right while it was away shows less time
    /// gone than went by (here 3 of 6 days: no reload on the wall clock alone, and deletes
    /// whose tombstones were purged meanwhile stayed unseen); a paused machine's monotonic
    /// clock shows less than the wall clock.
    #[test]
    fn out_of_touch_on_either_clock() {
        let day = Duration::from_secs(86_400);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mono = Instant::now();
        let t = Clocks { wall, mono };
        let retention = 8 * day;
        let corrected = Clocks {
            wall: wall + 3 * day,
            mono: mono + 6 * day,
        };
        assert!(out_of_touch(Some(t), corrected, retention));
        let paused = Clocks {
            wall: wall + 6 * day,
            mono: mono + Duration::from_secs(1),
        };
        assert!(out_of_touch(Some(t), paused, retention));
        let both_short = Clocks {
            wall: wall + 3 * day,
            mono: mono + 3 * day,
        };
        assert!(!out_of_touch(Some(t), both_short, retention));
    }

    /// Session 15: a sweep's (or a purge round's) finds were applied whatever came between the
    /// read and the apply, which waits for the writer lock. A load in between (a replica out
    /// of touch, after a pause, reads the whole store) may have found a token deleted and its
    /// tombstone purged since the read: applying the token's record read before brought the
    /// revoked token back, until the next load. Finds read before a load are not applied
    /// after it.
    #[test]
    fn finds_read_before_a_load_are_not_applied_after_it() {
        let store = ClusterStore::new(
            &crate::upstream::pool::tests::backend("http://127.0.0.1:9"),
            "esgate-tokens",
            Duration::from_secs(60),
        );
        let change = Change::PutIpFilter {
            ip_filter: IpFilter {
                name: "office".into(),
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                created_at: 1_700_000_000,
            },
        };
        let (id, source) = documents(&change, 3, 1_700_000_000).unwrap().remove(0);
        let hit = json!({"_id": id, "_source": source, "_seq_no": 5, "_primary_term": 1});
        let read = |loads| Found {
            loads,
            forgets: 0,
            hits: vec![hit.clone()],
        };
        let before = read(store.sync().loads);
        // A load came between the read and the apply.
        store.sync().loads += 1;
        assert!(store.sweep_apply(&before).is_empty());
        assert!(!store.sync().versions.contains_key(&id), "nothing held");
        // Read after it, the same record is applied.
        let after = read(store.sync().loads);
        assert_eq!(store.sweep_apply(&after), vec![change]);
    }

    /// Review 15b: a sweep's (or window re-read's) finds waited for the writer lock with the
    /// paging lock already released, so a purge round could run in between. A record (a
    /// token's; here an IP filter's) the round read before its delete, whose tombstone this
    /// replica then polled,
    /// held for the purge hold and purged (its version forgotten), was no longer older than
    /// anything held when applied: a revoked token came back on this replica, for good
    /// (the store holds no record of it any more). Finds of records no longer held, read
    /// before a held version was forgotten, are not applied (tombstones are, and the window
    /// keeps its floor so a later re-read reads them again).
    #[test]
    fn finds_read_before_a_purge_forgot_their_record_are_not_applied_after_it() {
        let store = ClusterStore::new(
            &crate::upstream::pool::tests::backend("http://127.0.0.1:9"),
            "esgate-tokens",
            Duration::from_secs(60),
        );
        let put = Change::PutIpFilter {
            ip_filter: IpFilter {
                name: "office".into(),
                cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                created_at: 1_700_000_000,
            },
        };
        let delete = Change::DeleteIpFilter {
            name: "office".into(),
        };
        let hit = |change: &Change, seq: u64, seq_no: u64| {
            let (id, source) = documents(change, seq, 1_700_000_000).unwrap().remove(0);
            json!({"_id": id, "_source": source, "_seq_no": seq_no, "_primary_term": 1})
        };
        let (old_put, tomb) = (hit(&put, 3, 5), hit(&delete, 4, 6));
        let other = hit(&Change::DeleteFilter { id: "f".into() }, 3, 7);
        let id = "ip_filter:office".to_owned();
        {
            let mut s = store.sync();
            s.max_seq = 4;
            s.counter_seen = 4;
        }
        // A sweep and a window re-read read the record, and a tombstone, before its delete.
        let read = |hits: Vec<Value>| Found {
            hits,
            ..Found::starting(&store.sync())
        };
        let swept = read(vec![old_put.clone(), other.clone()]);
        let windowed = WindowRead {
            settled: Some(4),
            found: read(vec![old_put.clone()]),
        };
        // The poll brings the delete; a purge round deletes its tombstone and forgets it.
        assert_eq!(store.accept(&tomb), Some(delete));
        store.forget_purged(
            &id,
            Version {
                primary_term: 1,
                seq_no: 6,
            },
        );
        assert!(!store.sync().versions.contains_key(&id));
        // The tombstone read before still applies; the record does not come back.
        assert_eq!(
            store.sweep_apply(&swept),
            vec![Change::DeleteFilter { id: "f".into() }]
        );
        assert!(store.window_apply(&windowed).is_empty());
        assert!(!store.sync().versions.contains_key(&id), "nothing held");
        assert_eq!(store.sync().floor, 0, "the window keeps its floor");
        // Read after the forget, the same record is applied (created again).
        let again = read(vec![old_put]);
        assert_eq!(store.sweep_apply(&again), vec![put]);
    }

    /// Session 15: a page that reports a failed shard or a timeout may lack records; taken for
    /// whole, a round could move the floor past a record it never read. Refused.
    #[test]
    fn partial_pages_are_refused() {
        let hit = json!({"_id": "token:t1"});
        let whole = json!({"timed_out": false, "_shards": {"total": 1, "successful": 1, "failed": 0},
                           "hits": {"hits": [hit]}});
        assert_eq!(
            take_hits(&mut whole.clone(), "a read").unwrap(),
            vec![hit.clone()]
        );
        let bare = json!({"hits": {"hits": [hit]}});
        assert_eq!(
            take_hits(&mut bare.clone(), "a read").unwrap(),
            vec![hit.clone()]
        );
        for partial in [
            json!({"timed_out": true, "hits": {"hits": [hit]}}),
            json!({"_shards": {"total": 2, "successful": 1, "failed": 1}, "hits": {"hits": [hit]}}),
        ] {
            let err = take_hits(&mut partial.clone(), "a read").unwrap_err();
            assert!(err.to_string().contains("partial page"), "{err}");
        }
    }

    /// rel26: a scroll that failed to open for any reason was read by key instead, a second
    /// whole read about 20 times a scroll's cost on a cluster already timing out or refusing
    /// searches. Only the answers both dialects give when no scroll context is left (each
    /// version's type and status, all shards or some failing) may be read by key.
    #[test]
    fn only_an_answer_out_of_scroll_contexts_is_read_by_key() {
        let reason = "Trying to create too many scroll contexts. Must be less than or equal to: \
                      [500]. This limit can be set by changing the \
                      [search.max_open_scroll_context] setting.";
        let all_failed = |kind: &str, cause_reason: &str, status: u16| {
            let cause = json!({"type": kind, "reason": cause_reason});
            json!({"error": {
                "root_cause": [cause],
                "type": "search_phase_execution_exception",
                "reason": "all shards failed",
                "phase": "query",
                "grouped": true,
                "failed_shards": [{"shard": 0, "index": ".esgate", "node": "n1", "reason": cause}],
            }, "status": status})
        };
        let some_failed = |kind: &str, cause_reason: &str| {
            json!({"_scroll_id": "FGluY2x1ZGU", "timed_out": false,
                   "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1,
                               "failures": [{"shard": 1, "index": ".esgate", "node": "n2",
                                             "reason": {"type": kind, "reason": cause_reason}}]},
                   "hits": {"hits": []}})
        };
        for out in [
            // Elasticsearch 8.12 and later.
            all_failed("too_many_scroll_contexts_exception", reason, 429),
            // Elasticsearch before 8.12.
            all_failed("exception", reason, 500),
            // OpenSearch.
            all_failed("rejected_execution_exception", reason, 429),
            some_failed("too_many_scroll_contexts_exception", reason),
            some_failed("rejected_execution_exception", reason),
            json!({"error": {"type": "too_many_scroll_contexts_exception", "reason": reason},
                   "status": 429}),
        ] {
            assert!(out_of_scroll_contexts(&out), "{out}");
        }
        let queue_full = "rejected execution of org.elasticsearch.common.util.concurrent.\
                          TimedRunnable@6d1 on QueueResizingEsThreadPoolExecutor[name = n1/search, \
                          queue capacity = 1000]";
        for other in [
            // A full search queue, in both dialects' types.
            all_failed("es_rejected_execution_exception", queue_full, 429),
            all_failed("rejected_execution_exception", queue_full, 429),
            some_failed("rejected_execution_exception", queue_full),
            all_failed(
                "circuit_breaking_exception",
                "[parent] Data too large, data for [<http_request>] would be larger than limit",
                429,
            ),
            // OpenSearch's points in time are not scrolls.
            all_failed(
                "rejected_execution_exception",
                "Trying to create too many Point In Time contexts. Must be less than or equal to: [300].",
                429,
            ),
            json!({"error": {"root_cause": [], "type": "search_phase_execution_exception",
                             "reason": "all shards failed", "phase": "query", "grouped": true,
                             "failed_shards": []}, "status": 503}),
            json!({"error": "no handler found for uri", "status": 400}),
            json!({"error": {"reason": 7}}),
            some_failed("exception", "the shard is closing"),
            Value::Null,
        ] {
            assert!(!out_of_scroll_contexts(&other), "{other}");
        }
    }

    /// A poll after a reload lands on top of it; a reload after polls replaces them.
    #[test]
    fn polled_batches_compose_and_a_reload_replaces_what_came_before() {
        let put = |name: &str| Change::DeleteFilter { id: name.into() };
        let mut p = Polled {
            reloaded: None,
            changes: vec![put("a")],
        };
        p.then(Polled {
            reloaded: None,
            changes: vec![put("b")],
        });
        assert_eq!(p.changes, vec![put("a"), put("b")]);
        assert!(p.reloaded.is_none());
        p.then(Polled {
            reloaded: Some(vec![put("all")]),
            changes: vec![],
        });
        p.then(Polled {
            reloaded: None,
            changes: vec![put("c")],
        });
        assert_eq!(p.reloaded, Some(vec![put("all")]));
        assert_eq!(p.changes, vec![put("c")]);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn every_change_round_trips_through_its_documents() {
        use crate::store::model::{FieldValue, FilterRef, Permission, SecretHash};
        let token = Token {
            id: "tok_a".into(),
            name: "n".into(),
            secret_hash: SecretHash([7; 32]),
            filters: vec![FilterRef::Inline(FieldValue {
                field: "env".into(),
                value: "x".into(),
            })],
            indices: vec!["logs-*".into()],
            permissions: [Permission::Read].into(),
            created_at: 1,
            expires_at: Some(2),
            ip_filter: None,
            previous_secret: None,
            limits: Default::default(),
            kibana_spaces: vec!["default".into()],
            scores: None,
        };
        let changes = [
            Change::PutToken { token },
            Change::DeleteToken { id: "tok_b".into() },
            Change::DeleteFilter { id: "f".into() },
            Change::DeleteIpFilter {
                name: "office".into(),
            },
            Change::LastUsed {
                times: vec![("tok_a".into(), 5)],
            },
        ];
        for c in changes {
            for (id, source) in documents(&c, 4, 1_700_000_000).unwrap() {
                match decode(&id, &source) {
                    Ok(Some(Decoded::Change(back))) => assert_eq!(back, c),
                    _ => panic!("{id} did not decode"),
                }
            }
        }
    }

    /// Session 14: a write whose records came back `LATE` after its claim was sent, on
    /// either clock, is stamped again; so is one whose wall clock went back.
    #[test]
    fn a_write_is_late_on_either_clock_or_a_clock_gone_back() {
        const _: () = assert!(LATE.as_millis() * 2 <= SETTLE.as_millis());
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mono = Instant::now();
        let at = Clocks { wall, mono };
        let after = |w: Duration, m: Duration| Clocks {
            wall: wall + w,
            mono: mono + m,
        };
        let short = LATE - Duration::from_millis(1);
        assert!(!late(at, at));
        assert!(!late(at, after(short, short)));
        assert!(late(at, after(LATE, LATE)));
        // A paused machine: the monotonic clock stood still, the wall clock did not.
        assert!(late(at, after(Duration::from_secs(12), Duration::ZERO)));
        // A wall clock set back by about the time the write took.
        assert!(late(at, after(Duration::ZERO, Duration::from_secs(12))));
        let back = Clocks {
            wall: wall - Duration::from_secs(1),
            mono,
        };
        assert!(late(at, back));
    }

    /// Session 14: the floor passed a `seq` SETTLE after this replica saw it claimed, at any
    /// poll; a record that landed after the last window re-read before that (up to
    /// `WINDOW_EVERY` polls earlier) was never read. Now the floor passes it only after a
    /// window re-read that started SETTLE after it was seen.
    #[test]
    fn the_floor_passes_a_seq_only_after_a_window_read_settle_after_it_was_seen() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut s = Sync {
            max_seq: 10,
            ..Sync::default()
        };
        // Seq 10 seen at 0 s; then polls every second, a window re-read every fourth.
        s.observe(at(0));
        let mut windows = vec![];
        for k in 1..=16 {
            if k % 4 == 0 {
                if s.floor < 10 {
                    windows.push(k);
                }
                let settled = s.settled(at(k));
                s.pass(settled);
            }
            s.observe(at(k));
            if s.floor >= 10 {
                // A window re-read read seq 10 after SETTLE had gone by since it was seen.
                assert!(
                    windows.iter().any(|w| at(*w) >= at(0) + SETTLE),
                    "floor passed 10 at {k} s after re-reads at {windows:?}"
                );
            }
        }
        assert_eq!(s.floor, 10, "it moves on all the same");
        assert_eq!(windows, vec![4, 8]);
    }

    /// Session 15: the window re-read runs beside the polls, and with many records under one
    /// `seq` it takes seconds; the polls meanwhile keep only the newest observation `SETTLE`
    /// old. The floor moved to what was seen `SETTLE` before the re-read started, looked up
    /// when it ended: by then the polls had dropped those observations, and the floor never
    /// moved (each re-read read the 20,000 records again). It is looked up when the re-read
    /// starts.
    #[test]
    fn a_slow_window_read_moves_the_floor_to_what_was_settled_when_it_started() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = Sync {
            max_seq: 10,
            ..Sync::default()
        };
        // Seq 10 seen at 0 s, polls every 500 ms; seq 20 seen at 4 s.
        for k in 0..=12 {
            if k == 8 {
                s.max_seq = 20;
            }
            s.observe(ms(500 * k));
        }
        // A re-read starts at 6 s (seq 10 settled, 20 not); polls go on while it reads for 6 s.
        let settled = s.settled(ms(6000));
        assert_eq!(settled, Some(10));
        for k in 13..=24 {
            s.observe(ms(500 * k));
        }
        s.pass(settled);
        assert_eq!(s.floor, 10, "the floor passes what the re-read settled");
        // The next one, started at 12 s (9 s after seq 20 was seen), passes 20.
        let settled = s.settled(ms(12_000));
        s.pass(settled);
        assert_eq!(s.floor, 20);
    }

    /// Review of session 14: a replica reads a record that landed behind its floor only in a
    /// sweep (every 240 poll intervals: 2 to 4 minutes) or, for a tombstone, a purge round;
    /// the replicas that held a tombstone purge it after the purge hold. With a short retention
    /// (allowed down to 4 s) the hold (10 s and up) came before the sweep, so the replica that
    /// missed the tombstone kept the revoked token: one of the two reads must come at least
    /// twice per hold, whatever the retention and poll interval.
    #[test]
    fn every_tombstone_is_read_at_least_twice_per_purge_hold() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        for poll in [ms(50), ms(500), secs(1)] {
            for retention in [
                secs(4),
                secs(20),
                secs(60),
                secs(300),
                secs(3600),
                secs(6 * 3600),
                secs(9 * 3600),
                secs(7 * 86400),
            ] {
                let read = purge_every(retention).min(poll * SWEEP_EVERY);
                assert!(
                    read * 2 <= purge_hold(retention),
                    "poll {poll:?}, retention {retention:?}: a read every {read:?}, a hold of {:?}",
                    purge_hold(retention)
                );
            }
        }
    }

    /// Review of session 14: a `seq` passed without a record read under it (a write still in
    /// flight whose records land after a later write's) is tracked until a read brings it or
    /// the floor passes it; meanwhile every poll asks for records under it.
    #[test]
    fn a_skipped_seq_is_unseen_until_read_or_behind_the_floor() {
        let mut s = Sync {
            max_seq: 10,
            floor: 10,
            ..Sync::default()
        };
        s.saw(11);
        assert!(s.unseen.is_empty(), "the next seq: nothing skipped");
        s.saw(14);
        assert_eq!(s.unseen.iter().copied().collect::<Vec<_>>(), vec![12, 13]);
        assert_eq!(s.max_seq, 14);
        s.saw(12);
        assert_eq!(s.unseen.iter().copied().collect::<Vec<_>>(), vec![13]);
        let t0 = Instant::now();
        s.observe(t0);
        let settled = s.settled(t0 + SETTLE);
        s.pass(settled);
        assert_eq!(s.floor, 14);
        assert!(
            s.unseen.is_empty(),
            "behind the floor: no longer waited for"
        );
        s.saw(14 + 10_000);
        assert_eq!(s.unseen.len(), MAX_UNSEEN);
        assert_eq!(s.unseen.last(), Some(&(14 + 9_999)));
    }

    #[test]
    fn only_esgates_mapping_is_accepted() {
        assert!(mapping_is_ours(&mapping()));
        let mut other = mapping();
        other["dynamic"] = json!(true);
        assert!(!mapping_is_ours(&other));
        let mut other = mapping();
        other["properties"]["record"] = json!({"type": "object"});
        assert!(!mapping_is_ours(&other));
        assert!(!mapping_is_ours(&json!({"properties": {}})));
    }
}
